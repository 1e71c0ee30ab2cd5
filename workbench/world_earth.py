"""The embedded world's Earth: its radius, rotation and day, and a fixed synthetic Earth-like geography of
land and mountain blobs, giving the land-sea mask and the orography at any unit vector
(:mod:`workbench.world` evaluates the atmosphere over them)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6.37122e6  # as in Williamson et al. (1992)
EARTH_RADIUS_KM = EARTH_RADIUS_M / 1000.0
OMEGA = 7.292e-5  # Earth's rotation rate, s-1
SECONDS_PER_DAY = 86400.0

# Land blobs: (lat, lon, a_km along `angle`, b_km across, angle in degrees counter-
# clockwise from east, amplitude (+1 land, < 0 carves sea), shape q: 2 ellipse, 4 boxy).
LAND_BLOBS: tuple[tuple[float, float, float, float, float, float, float], ...] = (
    # North America
    (40.0, -97.0, 1150.0, 1150.0, 0.0, 1.0, 4.0),
    (41.5, -114.0, 780.0, 1000.0, 15.0, 1.0, 4.0),
    (37.5, -82.0, 700.0, 750.0, 20.0, 1.0, 4.0),
    (46.0, -82.0, 600.0, 350.0, 0.0, 1.0, 2.0),  # Great Lakes / Ontario
    (44.5, -72.0, 350.0, 300.0, 30.0, 1.0, 2.0),  # New England
    (47.5, -66.0, 400.0, 250.0, 0.0, 1.0, 2.0),  # Maritimes
    (48.5, -56.5, 200.0, 200.0, 0.0, 1.0, 2.0),  # Newfoundland
    (28.0, -81.3, 180.0, 420.0, 10.0, 1.0, 2.0),  # Florida
    (29.5, -111.0, 550.0, 300.0, -50.0, 1.0, 2.0),  # Sonora / Baja
    (23.5, -102.5, 900.0, 400.0, -50.0, 1.0, 2.0),  # Mexico
    (19.5, -89.0, 250.0, 250.0, 0.0, 1.0, 2.0),  # Yucatan
    (13.0, -86.0, 650.0, 180.0, -30.0, 1.0, 2.0),  # Central America
    (21.7, -79.0, 550.0, 90.0, -15.0, 1.0, 2.0),  # Cuba
    (24.5, -90.5, 750.0, 400.0, 0.0, -1.5, 2.0),  # Gulf of Mexico
    (58.0, -98.0, 1800.0, 1000.0, 0.0, 1.0, 4.0),  # Canada
    (67.0, -115.0, 1200.0, 350.0, 0.0, 1.0, 2.0),  # northern Canada
    (57.0, -72.0, 500.0, 400.0, 0.0, 1.0, 2.0),  # Quebec / Ungava
    (53.0, -63.0, 600.0, 450.0, 0.0, 1.0, 2.0),  # Labrador
    (59.5, -85.0, 650.0, 700.0, 0.0, -1.5, 2.0),  # Hudson Bay
    (66.0, -151.0, 800.0, 480.0, 0.0, 1.0, 4.0),  # Alaska
    (74.0, -97.0, 850.0, 450.0, 0.0, 1.0, 2.0),  # Arctic archipelago
    (80.0, -78.0, 380.0, 250.0, 30.0, 1.0, 2.0),  # Ellesmere
    (68.0, -72.0, 700.0, 250.0, 115.0, 1.0, 2.0),  # Baffin
    (60.0, -128.0, 600.0, 500.0, 0.0, 1.0, 2.0),  # Yukon / northern BC
    (74.0, -40.0, 600.0, 950.0, 0.0, 1.0, 2.0),  # Greenland
    (64.5, -45.0, 300.0, 450.0, 0.0, 1.0, 2.0),
    (65.0, -18.5, 220.0, 120.0, 0.0, 1.0, 2.0),  # Iceland
    # South America
    (-3.0, -63.0, 1800.0, 900.0, 0.0, 1.0, 3.0),
    (-12.0, -48.0, 1300.0, 1000.0, 0.0, 1.0, 3.0),  # Brazil
    (6.5, -66.0, 900.0, 420.0, 0.0, 1.0, 2.0),  # Venezuela / Colombia
    (4.5, -57.0, 350.0, 300.0, 0.0, 1.0, 2.0),  # Guianas
    (-12.0, -73.0, 650.0, 450.0, -55.0, 1.0, 2.0),  # Peru
    (-24.0, -62.0, 850.0, 800.0, 0.0, 1.0, 3.0),
    (-16.0, -65.0, 750.0, 500.0, 0.0, 1.0, 2.0),  # Bolivia
    (-34.0, -61.0, 450.0, 550.0, 0.0, 1.0, 2.0),  # Pampas
    (-31.0, -64.0, 650.0, 500.0, 0.0, 1.0, 2.0),
    (-40.0, -67.0, 450.0, 1000.0, 0.0, 1.0, 2.0),  # Patagonia
    (-50.0, -71.0, 250.0, 450.0, 0.0, 1.0, 2.0),
    # Europe
    (40.0, -4.0, 500.0, 450.0, 0.0, 1.0, 4.0),  # Iberia
    (46.8, 2.5, 500.0, 420.0, 0.0, 1.0, 3.0),  # France
    (51.0, 16.0, 850.0, 380.0, 0.0, 1.0, 4.0),  # central Europe
    (46.3, 10.5, 550.0, 230.0, 0.0, 1.0, 3.0),  # Alpine region
    (53.0, 27.0, 500.0, 350.0, 0.0, 1.0, 2.0),  # Belarus
    (42.0, 44.5, 450.0, 250.0, 0.0, 1.0, 2.0),  # Caucasus
    (55.0, 42.0, 1500.0, 1000.0, 0.0, 1.0, 4.0),  # European Russia
    (66.5, 52.0, 900.0, 330.0, 0.0, 1.0, 2.0),  # northern Russia
    (67.5, 35.0, 300.0, 150.0, 0.0, 1.0, 2.0),  # Kola
    (47.0, 23.0, 750.0, 350.0, 0.0, 1.0, 4.0),  # Carpathians / Balkans north
    (63.5, 14.5, 1000.0, 330.0, 55.0, 1.0, 2.0),  # Scandinavia
    (63.5, 27.0, 280.0, 500.0, 0.0, 1.0, 2.0),  # Finland
    (42.5, 12.8, 550.0, 120.0, -50.0, 1.0, 2.0),  # Italy
    (42.5, 21.0, 480.0, 330.0, 0.0, 1.0, 2.0),  # Balkans
    (39.0, 22.0, 200.0, 250.0, 0.0, 1.0, 2.0),  # Greece
    (39.0, 34.0, 700.0, 280.0, 0.0, 1.0, 4.0),  # Anatolia
    (53.8, -2.0, 200.0, 420.0, 10.0, 1.0, 2.0),  # Great Britain
    (53.3, -8.0, 160.0, 200.0, 0.0, 1.0, 2.0),  # Ireland
    (43.3, 34.8, 600.0, 280.0, 0.0, -1.5, 2.0),  # Black Sea
    (58.5, 20.0, 180.0, 450.0, 20.0, -1.5, 2.0),  # Baltic
    (56.5, 4.0, 300.0, 400.0, 0.0, -1.5, 2.0),  # North Sea
    (62.5, 20.5, 380.0, 110.0, 65.0, -1.5, 2.0),  # Gulf of Bothnia
    (43.0, 15.5, 380.0, 80.0, -47.0, -1.5, 2.0),  # Adriatic
    (45.5, -4.0, 250.0, 200.0, 0.0, -1.5, 2.0),  # Bay of Biscay
    (57.5, 14.5, 230.0, 280.0, 0.0, 1.0, 2.0),  # southern Sweden
    (56.0, 9.5, 120.0, 150.0, 0.0, 1.0, 2.0),  # Denmark
    (41.0, 9.0, 80.0, 220.0, 0.0, 1.0, 2.0),  # Corsica / Sardinia
    # Africa and Arabia
    (20.0, 9.0, 2600.0, 1350.0, 0.0, 1.0, 4.0),
    (20.0, 31.0, 700.0, 1100.0, 0.0, 1.0, 3.0),  # Egypt / Sudan
    (8.0, -2.0, 1100.0, 350.0, 0.0, 1.0, 2.0),  # West African coast
    (10.5, -11.0, 450.0, 350.0, 0.0, 1.0, 2.0),  # Guinea
    (34.5, 3.0, 1000.0, 250.0, 0.0, 1.0, 2.0),  # Maghreb
    (-9.0, 15.0, 350.0, 700.0, 0.0, 1.0, 2.0),  # Angola coast
    (-8.0, 37.0, 300.0, 600.0, 0.0, 1.0, 2.0),  # Tanzania coast
    (-29.0, 25.0, 950.0, 450.0, 0.0, 1.0, 3.0),  # South Africa
    (0.0, 23.0, 1800.0, 1200.0, 0.0, 1.0, 2.0),
    (7.0, 44.0, 700.0, 550.0, 0.0, 1.0, 2.0),  # Horn of Africa
    (3.0, 45.0, 250.0, 450.0, 55.0, 1.0, 2.0),  # Somalia
    (-15.0, 26.5, 1500.0, 1100.0, 0.0, 1.0, 2.0),
    (-27.0, 24.0, 800.0, 650.0, 0.0, 1.0, 2.0),
    (-19.0, 46.8, 780.0, 220.0, 73.0, 1.0, 2.0),  # Madagascar
    (23.0, 47.0, 950.0, 750.0, -30.0, 1.0, 2.0),  # Arabia
    (15.5, 47.0, 500.0, 200.0, 0.0, 1.0, 2.0),  # Yemen
    (33.5, 41.0, 600.0, 350.0, 0.0, 1.0, 2.0),  # Syria / Iraq
    (20.5, 38.5, 950.0, 110.0, -59.0, -1.5, 2.0),  # Red Sea
    (27.0, 51.0, 450.0, 150.0, -35.0, -1.5, 2.0),  # Persian Gulf
    # Asia
    (63.0, 100.0, 3300.0, 1250.0, 0.0, 1.0, 4.0),  # Siberia
    (65.5, 155.0, 1300.0, 550.0, 0.0, 1.0, 2.0),  # north-east Siberia
    (66.0, 175.0, 500.0, 300.0, 0.0, 1.0, 2.0),  # Chukotka
    (56.0, 159.5, 450.0, 150.0, 70.0, 1.0, 2.0),  # Kamchatka
    (54.0, 148.0, 600.0, 500.0, 0.0, -1.5, 2.0),  # Sea of Okhotsk
    (45.0, 70.0, 1900.0, 900.0, 0.0, 1.0, 4.0),  # central Asia
    (41.5, 50.5, 550.0, 180.0, 90.0, -1.5, 2.0),  # Caspian Sea
    (48.0, 115.0, 1500.0, 500.0, 0.0, 1.0, 4.0),  # Mongolia
    (45.0, 128.0, 500.0, 500.0, 0.0, 1.0, 2.0),  # Manchuria
    (33.0, 68.0, 900.0, 550.0, 0.0, 1.0, 4.0),  # Afghanistan / Pakistan
    (33.0, 88.0, 1200.0, 600.0, 0.0, 1.0, 4.0),  # Tibet
    (34.0, 106.0, 1500.0, 1100.0, 0.0, 1.0, 4.0),  # China
    (32.0, 54.0, 1100.0, 650.0, 0.0, 1.0, 2.0),  # Iran
    (22.0, 79.0, 850.0, 800.0, 0.0, 1.0, 2.0),  # India
    (13.5, 77.5, 300.0, 500.0, 0.0, 1.0, 2.0),
    (27.0, 74.0, 600.0, 350.0, 0.0, 1.0, 2.0),
    (25.0, 90.0, 400.0, 250.0, 0.0, 1.0, 2.0),  # Bangladesh
    (16.0, 102.0, 500.0, 800.0, 0.0, 1.0, 2.0),  # Indochina
    (22.0, 104.0, 700.0, 300.0, 0.0, 1.0, 2.0),
    (23.5, 113.0, 500.0, 250.0, 0.0, 1.0, 2.0),  # south China
    (74.0, 100.0, 600.0, 200.0, 0.0, 1.0, 2.0),  # Taimyr
    (47.0, 136.0, 450.0, 300.0, 60.0, 1.0, 2.0),  # Primorye
    (5.0, 101.5, 450.0, 120.0, -70.0, 1.0, 2.0),  # Malay peninsula
    (37.0, 127.5, 150.0, 350.0, 0.0, 1.0, 2.0),  # Korea
    (37.5, 138.0, 800.0, 150.0, 42.0, 1.0, 2.0),  # Japan
    (12.0, 123.0, 550.0, 150.0, 80.0, 1.0, 2.0),  # Philippines
    (0.5, 114.0, 450.0, 450.0, 0.0, 1.0, 2.0),  # Borneo
    (-0.5, 101.5, 800.0, 180.0, -48.0, 1.0, 2.0),  # Sumatra
    (-7.3, 110.0, 500.0, 100.0, -5.0, 1.0, 2.0),  # Java
    (-5.5, 141.0, 1150.0, 260.0, -22.0, 1.0, 2.0),  # New Guinea
    # Oceania and Antarctica
    (-26.0, 134.0, 1700.0, 1000.0, 0.0, 1.0, 3.0),  # Australia
    (-27.0, 120.0, 600.0, 900.0, 0.0, 1.0, 2.0),
    (-15.0, 133.0, 700.0, 350.0, 0.0, 1.0, 2.0),
    (-14.5, 143.5, 200.0, 450.0, 0.0, 1.0, 2.0),  # Cape York
    (-35.0, 146.0, 500.0, 350.0, 0.0, 1.0, 2.0),
    (-14.5, 139.0, 250.0, 300.0, 0.0, -1.5, 2.0),  # Gulf of Carpentaria
    (-42.0, 146.5, 150.0, 150.0, 0.0, 1.0, 2.0),  # Tasmania
    (-41.0, 173.0, 650.0, 150.0, 45.0, 1.0, 2.0),  # New Zealand
    (-90.0, 0.0, 2500.0, 2500.0, 0.0, 1.0, 2.0),  # Antarctica
    (-72.0, -65.0, 500.0, 150.0, 70.0, 1.0, 2.0),  # Antarctic Peninsula
)

# Mountains: (lat, lon, a_km, b_km, angle deg, height m, super-Gaussian power p)
MOUNTAIN_BLOBS: tuple[tuple[float, float, float, float, float, float, float], ...] = (
    (40.5, -108.0, 1500.0, 420.0, 118.0, 2400.0, 1.0),  # Rockies
    (39.0, -113.0, 800.0, 600.0, 0.0, 1200.0, 1.5),  # Great Basin / Colorado Plateau
    (40.0, -102.0, 350.0, 1000.0, 0.0, 500.0, 1.5),  # High Plains
    (56.0, -125.0, 800.0, 250.0, 125.0, 1500.0, 1.0),  # Canadian Rockies
    (41.0, -121.0, 1000.0, 150.0, 100.0, 1400.0, 1.0),  # Sierra Nevada / Cascades
    (24.0, -103.0, 800.0, 300.0, 125.0, 1800.0, 1.5),  # Mexican plateau
    (37.0, -80.0, 900.0, 200.0, 40.0, 700.0, 1.0),  # Appalachians
    (62.5, -150.0, 500.0, 200.0, 0.0, 1500.0, 1.0),  # Alaska Range
    (72.5, -40.0, 450.0, 1000.0, 0.0, 2800.0, 2.0),  # Greenland ice sheet
    (-20.0, -67.5, 4200.0, 250.0, 95.0, 3500.0, 1.0),  # Andes
    (-17.5, -68.0, 450.0, 300.0, 100.0, 1000.0, 1.5),  # Altiplano
    (-15.0, -47.0, 1000.0, 800.0, 0.0, 800.0, 1.0),  # Brazilian highlands
    (33.0, 88.0, 1250.0, 600.0, 0.0, 4800.0, 2.0),  # Tibet
    (28.5, 84.0, 1200.0, 150.0, -15.0, 1000.0, 1.0),  # Himalaya front
    (37.5, 72.0, 450.0, 250.0, 0.0, 3500.0, 1.5),  # Pamir / Hindu Kush
    (42.0, 80.0, 700.0, 150.0, 0.0, 2500.0, 1.0),  # Tian Shan
    (46.5, 100.0, 1000.0, 500.0, 0.0, 1400.0, 1.5),  # Mongolian plateau
    (32.0, 54.0, 1000.0, 450.0, -35.0, 1200.0, 1.5),  # Iranian plateau / Zagros
    (39.0, 35.0, 600.0, 250.0, 0.0, 1000.0, 1.5),  # Anatolian plateau
    (42.5, 44.0, 500.0, 100.0, -20.0, 2000.0, 1.0),  # Caucasus
    (46.3, 10.0, 450.0, 120.0, 10.0, 2000.0, 1.0),  # Alps
    (42.7, 0.5, 250.0, 70.0, 0.0, 1500.0, 1.0),  # Pyrenees
    (63.0, 12.0, 900.0, 150.0, 55.0, 900.0, 1.0),  # Scandinavian mountains
    (60.0, 59.0, 1200.0, 150.0, 90.0, 600.0, 1.0),  # Urals
    (65.0, 140.0, 1200.0, 800.0, 0.0, 900.0, 1.0),  # East Siberian highlands
    (63.0, 100.0, 900.0, 600.0, 0.0, 600.0, 1.0),  # Central Siberian plateau
    (9.0, 39.0, 500.0, 500.0, 0.0, 2000.0, 1.0),  # Ethiopian highlands
    (-3.0, 35.0, 600.0, 900.0, 0.0, 1200.0, 1.5),  # East African plateau
    (-26.0, 26.0, 900.0, 700.0, 0.0, 1200.0, 1.5),  # southern African plateau
    (32.0, -5.0, 600.0, 150.0, 20.0, 1500.0, 1.0),  # Atlas
    (-28.0, 150.0, 1300.0, 200.0, 100.0, 600.0, 1.0),  # Great Dividing Range
    (-82.0, 80.0, 1800.0, 1800.0, 0.0, 2900.0, 2.0),  # East Antarctic ice sheet
    (-79.0, -110.0, 900.0, 600.0, 0.0, 1500.0, 2.0),  # West Antarctic ice sheet
)
LAND_POWER = 4.0  # super-Gaussian power of the land blobs: exp(-rho^(2 p))


def blob(
    xyz: np.ndarray,
    lat: float,
    lon: float,
    a_km: float,
    b_km: float,
    angle: float,
    q: float,
    p: float,
) -> np.ndarray:
    """exp(-rho^(2p)) of a super-ellipse (exponent q) in the tangent plane at (lat, lon).

    Coordinates are the projections of the unit vectors on the local east and north axes
    (orthographic), so blobs have no dateline or pole seams; the far hemisphere is 0.
    """
    phi, lam, ang = np.deg2rad(lat), np.deg2rad(lon), np.deg2rad(angle)
    centre = np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    east = np.array([-np.sin(lam), np.cos(lam), 0.0])
    north = np.cross(centre, east)
    out = np.zeros(xyz.shape[0])
    # only points within reach can exceed exp(-40); 1.2 covers the boxy (q > 2) norm
    reach = 1.2 * 40.0 ** (1 / (2 * p)) * max(a_km, b_km) / EARTH_RADIUS_KM
    near = np.flatnonzero(dot(xyz, centre) > (np.sqrt(1 - reach**2) if reach < 1 else 0.0))
    if near.size:
        pts = xyz[near]
        x, y = dot(pts, east), dot(pts, north)
        along = (x * np.cos(ang) + y * np.sin(ang)) * (EARTH_RADIUS_KM / a_km)
        across = (y * np.cos(ang) - x * np.sin(ang)) * (EARTH_RADIUS_KM / b_km)
        out[near] = np.exp(-((np.abs(along) ** q + np.abs(across) ** q) ** (2 * p / q)))
    return out


def dot(xyz: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Row-wise dot product written out elementwise (bitwise independent of the row count)."""
    return xyz[:, 0] * vec[0] + xyz[:, 1] * vec[1] + xyz[:, 2] * vec[2]


def land_sea_mask(xyz: np.ndarray) -> np.ndarray:
    """Land fraction in [0, 1] at unit vectors ``xyz`` (n, 3), smooth across coasts."""
    total = np.zeros(xyz.shape[0])
    for lat, lon, a, b, ang, amp, q in LAND_BLOBS:
        total += amp * blob(xyz, lat, lon, a, b, ang, q, LAND_POWER)
    s = np.clip(2.0 * total - 0.5, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def orography(xyz: np.ndarray, lsm: np.ndarray) -> np.ndarray:
    """Surface height in m at unit vectors ``xyz``: >= 0, zero over sea."""
    height = np.zeros(xyz.shape[0])
    for lat, lon, a, b, ang, h, p in MOUNTAIN_BLOBS:
        height += h * blob(xyz, lat, lon, a, b, ang, 2.0, p)
    return height * lsm
