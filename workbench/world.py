"""The embedded analytic world: a deterministic atmosphere evaluated pointwise.

Every field is a closed-form function of (latitude, longitude, time, seed), so a global
grid and a limited-area grid sample one and the same atmosphere: the value at a point
never depends on which other points (or times) are evaluated alongside it. There are no
FFTs, no smoothing and no reductions over points; the one matrix product (in the noise)
sums exact integers, so BLAS's summation order cannot change a single bit.

Ingredients (DESIGN.md, "The embedded default: an analytic world"):

- ``z_500``/``z_850``: a solid-body zonal flow plus Rossby-Haurwitz waves R = 4, 5, 6
  (Williamson et al. 1992, test case 6) moving east at their analytic phase speeds,
  amplitudes drifting slowly; 850 hPa is weaker and tilted westward;
- ``u10``/``v10``: the non-divergent winds of that streamfunction at 850 hPa, reduced
  for the surface and turned toward low pressure by friction;
- ``t_500``/``t_850``/``t2m``: meridional gradient, seasonal cycle from the solar
  declination, diurnal cycle from the lagged solar zenith angle, land/sea contrast,
  lapse rate over orography and a temperature wave carried with the height waves;
- ``tp``: 6-hour precipitation: large-scale rain east of the troughs and in the ITCZ plus
  small convective cells (moist tropics, warm afternoon land); intermittent, heavy-tailed;
- ``insolation``: 1361 W m-2 times max(cos solar zenith angle, 0);
- statics ``orog``/``lsm`` from a fixed synthetic Earth-like geography of blobs
  (:mod:`workbench.world_earth`);
- a small spatially correlated noise from ``seed`` (random Fourier features on the
  sphere, fresh phases every hour): the only thing the seed changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property

import numpy as np
import xarray as xr

from .errors import WorkbenchError
from .grids import Grid, grid_attrs, unit_xyz
from .world_earth import (
    EARTH_RADIUS_KM,
    EARTH_RADIUS_M,
    OMEGA,
    SECONDS_PER_DAY,
    dot,
    land_sea_mask,
    orography,
)
from .world_waves import (
    LEVELS,
    RH_OMEGA,
    WAVES,
    b_max,
    phase_speed,
    rh_fields,
    rh_profiles,
    rotate,
    wave_swing,
)

__all__ = ["DEFAULT_VARIABLES", "VARIABLES", "evaluate", "generate"]

# --------------------------------------------------------------------------- constants

GRAVITY = 9.80665  # m s-2
SOLAR_CONSTANT = 1361.0  # W m-2
OBLIQUITY_DEG = 23.44
EPOCH = np.datetime64("2000-01-01T00:00:00", "s")

VARIABLES: dict[str, dict] = {
    "z_500": {"units": "m2 s-2", "long_name": "Geopotential at 500 hPa", "static": False, "kind": "state"},
    "z_850": {"units": "m2 s-2", "long_name": "Geopotential at 850 hPa", "static": False, "kind": "state"},
    "t_500": {"units": "K", "long_name": "Temperature at 500 hPa", "static": False, "kind": "state"},
    "t_850": {"units": "K", "long_name": "Temperature at 850 hPa", "static": False, "kind": "state"},
    "t2m": {"units": "K", "long_name": "2 metre temperature", "static": False, "kind": "state"},
    "u10": {"units": "m s-1", "long_name": "10 metre U wind component", "static": False, "kind": "state"},
    "v10": {"units": "m s-1", "long_name": "10 metre V wind component", "static": False, "kind": "state"},
    "tp": {"units": "m", "long_name": "Total precipitation (6-hour accumulation)", "static": False, "kind": "state"},
    "insolation": {"units": "W m-2", "long_name": "Top-of-atmosphere incident solar radiation", "static": False, "kind": "forcing"},
    "orog": {"units": "m", "long_name": "Surface geopotential height (orography)", "static": True, "kind": "static"},
    "lsm": {"units": "1", "long_name": "Land-sea mask (land fraction)", "static": True, "kind": "static"},
}  # fmt: skip

DEFAULT_VARIABLES: tuple[str, ...] = (
    "z_500", "z_850", "t_500", "t_850", "t2m", "u10", "v10", "tp", "insolation", "orog", "lsm",
)  # fmt: skip

# Standard deviation of the additive noise (about 2 % of each field's spatial spread);
# for tp, of the logarithm of a multiplicative factor (zeros stay zero).
NOISE_STD: dict[str, float] = {
    "z_500": 50.0, "z_850": 25.0, "t_500": 0.2, "t_850": 0.3, "t2m": 0.35,
    "u10": 0.08, "v10": 0.08, "tp": 0.15,
}  # fmt: skip
NOISE_FEATURES = 48
NOISE_SCALES_KM = (500.0, 3000.0)  # wavelengths of the noise's Fourier features
TP_CAP_MM = 150.0  # 6-hour precipitation saturates softly toward this (mm)

def _wave_wind(latitude, longitude, times, level: int = 850) -> tuple[np.ndarray, np.ndarray]:
    """Non-divergent (pre-friction) wind of the zonal flow plus the waves, (T, n) m s-1."""
    lat, lon = _check_points(latitude, longitude)
    t = _to_times(times)
    return _Frame(_Points(lat, lon), t).wind(level)


# --------------------------------------------------------------------------- time and sun


def _to_times(times) -> np.ndarray:
    """Any datetime-like sequence as a 1-D datetime64[s] array."""
    try:
        out = np.atleast_1d(np.asarray(times, dtype="datetime64[s]"))
    except (TypeError, ValueError) as err:
        raise WorkbenchError(f"times must be datetime64 values: {err}") from None
    if out.ndim != 1:
        raise WorkbenchError(f"times must be 1-D, got shape {out.shape}")
    return out


def _seconds_since(times: np.ndarray, origin: np.ndarray | np.datetime64) -> np.ndarray:
    return (times - origin).astype("timedelta64[s]").astype(np.float64)


def _declination(times: np.ndarray, lag_days: float = 0.0) -> np.ndarray:
    """Solar declination (rad) from the fractional day of year, ``lag_days`` earlier."""
    day = _seconds_since(times, times.astype("datetime64[Y]")) / SECONDS_PER_DAY
    return -np.deg2rad(OBLIQUITY_DEG) * np.cos(2 * np.pi * (day - lag_days + 10.0) / 365.25)


def _utc_angle(times: np.ndarray) -> np.ndarray:
    """Hour angle of the sun at longitude 0 (rad): -pi at 00 UTC, 0 at 12 UTC."""
    return (
        2 * np.pi * _seconds_since(times, times.astype("datetime64[D]")) / SECONDS_PER_DAY - np.pi
    )


# --------------------------------------------------------------------------- noise


def _noise_basis(xyz: np.ndarray, seed: int, var_index: int) -> np.ndarray:
    """cos and sin of random wave vectors dotted with the points, as integers, (2F, n).

    Wave vectors: random directions, lengths giving 500-3000 km wavelengths on Earth.
    The values are rounded to multiples of 2^-14 and stored as integers, so the matrix
    product in :func:`_noise` is exact whatever summation order BLAS picks.
    """
    rng = np.random.default_rng([seed, var_index])
    direction = rng.normal(size=(NOISE_FEATURES, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k_lo, k_hi = (2 * np.pi * EARTH_RADIUS_KM / s for s in NOISE_SCALES_KM[::-1])
    k = direction * np.exp(rng.uniform(np.log(k_lo), np.log(k_hi), NOISE_FEATURES))[:, None]
    arg = np.stack([dot(xyz, vec) for vec in k])
    return np.round(np.concatenate([np.cos(arg), np.sin(arg)]) * 2.0**14)


def _noise(basis: np.ndarray, hours: np.ndarray, seed: int, var_index: int) -> np.ndarray:
    """Unit-variance correlated noise (T, n) with fresh random phases for every whole hour.

    Phases come from ``default_rng([seed, hour, var_index])``: the same place, hour and
    seed always give the same value. Integer coefficients times integer bases: partial
    sums stay below 2^36, exact in float64.
    """
    coef = np.empty((hours.size, 2 * NOISE_FEATURES))
    norm = np.sqrt(2.0 / NOISE_FEATURES)
    for i, hour in enumerate(hours):
        rng = np.random.default_rng([seed, int(hour), var_index])
        phase = rng.uniform(0.0, 2 * np.pi, NOISE_FEATURES)
        coef[i, :NOISE_FEATURES] = np.cos(phase) * norm
        coef[i, NOISE_FEATURES:] = -np.sin(phase) * norm
    return (np.round(coef * 2.0**16) @ basis) * 2.0**-30


# --------------------------------------------------------------------------- points and frames


class _Points:
    """Per-point quantities shared by every time chunk: trigonometry, geography, noise bases."""

    def __init__(self, latitude: np.ndarray, longitude: np.ndarray, seed: int = 0) -> None:
        self.lat, self.lon, self.seed = latitude, longitude, seed
        phi, lam = np.deg2rad(latitude), np.deg2rad(longitude)
        self.sin_phi, self.cos_phi = np.sin(phi), np.cos(phi)
        self.sin_lam, self.cos_lam = np.sin(lam), np.cos(lam)
        self.lam = lam
        self.xyz = unit_xyz(latitude, longitude)
        self._bases: dict[int, np.ndarray] = {}

    @cached_property
    def lsm(self) -> np.ndarray:
        return land_sea_mask(self.xyz)

    @cached_property
    def orog(self) -> np.ndarray:
        return orography(self.xyz, self.lsm)

    @cached_property
    def waves(self) -> dict[int, dict[str, np.ndarray]]:
        """Per wave: TC6 latitude functions, normalised B, cos/sin of R and 2R lambda."""
        out = {}
        for r, *_ in WAVES:
            prof = rh_profiles(r, self.sin_phi, self.cos_phi)
            prof["bhat"] = prof["B"] / b_max(r)
            for m in (r, 2 * r):
                prof[f"cos{m}"], prof[f"sin{m}"] = np.cos(m * self.lam), np.sin(m * self.lam)
            out[r] = prof
        return out

    def noise_basis(self, var_index: int) -> np.ndarray:
        if var_index not in self._bases:
            self._bases[var_index] = _noise_basis(self.xyz, self.seed, var_index)
        return self._bases[var_index]


class _Frame:
    """The world at some points for a chunk of times; intermediate fields are cached."""

    def __init__(self, points: _Points, times: np.ndarray) -> None:
        self.p = points
        self.times = times
        self.seconds = _seconds_since(times, EPOCH)

    # ---- sun
    @cached_property
    def decl(self) -> np.ndarray:
        return _declination(self.times)

    @cached_property
    def season(self) -> np.ndarray:
        """Hemispheric seasonal index sin(phi) sin(decl 30 days ago) / sin(obliquity), (T, n)."""
        lagged = np.sin(_declination(self.times, lag_days=30.0)) / np.sin(np.deg2rad(OBLIQUITY_DEG))
        return lagged[:, None] * self.p.sin_phi

    def _cos_zenith(self, lag_hours: float) -> np.ndarray:
        """Cosine of the solar zenith angle ``lag_hours`` earlier in the day, (T, n)."""
        h0 = _utc_angle(self.times) - 2 * np.pi * lag_hours / 24.0
        sin_d, cos_d = np.sin(self.decl)[:, None], np.cos(self.decl)[:, None]
        cos_h = self.p.cos_lam * np.cos(h0)[:, None] - self.p.sin_lam * np.sin(h0)[:, None]
        return sin_d * self.p.sin_phi + cos_d * self.p.cos_phi * cos_h

    @cached_property
    def cos_zenith(self) -> np.ndarray:
        return self._cos_zenith(0.0)

    @cached_property
    def afternoon(self) -> np.ndarray:
        """max(cos zenith, 0) 2.5 hours earlier: the heating that drives t2m and convection."""
        return np.maximum(self._cos_zenith(2.5), 0.0)

    @cached_property
    def diurnal(self) -> np.ndarray:
        """Lagged heating minus its daily mean (zero mean over a day), (T, n)."""
        a = self.p.sin_phi * np.sin(self.decl)[:, None]
        b = np.maximum(self.p.cos_phi, 1e-12) * np.cos(self.decl)[:, None]
        half_day = np.arccos(np.clip(-a / b, -1.0, 1.0))
        return self.afternoon - (half_day * a + b * np.sin(half_day)) / np.pi

    # ---- waves
    @cached_property
    def swing(self) -> dict[int, np.ndarray]:
        """Amplitude drift K_R(t) / K_R per wave, (T, 1)."""
        return {r: wave_swing(r, self.seconds)[:, None] for r, *_ in WAVES}

    @cached_property
    def _phases(self) -> dict[tuple[int, int], tuple[np.ndarray, ...]]:
        out = {}
        for r, *_ in WAVES:
            prof = self.p.waves[r]
            for level, (*_, shift) in LEVELS.items():
                theta = r * np.mod(phase_speed(r) * self.seconds, 2 * np.pi) - 2 * np.pi * shift
                cos1, sin1 = rotate(prof[f"cos{r}"], prof[f"sin{r}"], theta)
                cos2, _ = rotate(prof[f"cos{2 * r}"], prof[f"sin{2 * r}"], 2 * theta)
                out[(r, level)] = (cos1, sin1, cos2)
        return out

    def phase(self, r: int, level: int) -> tuple[np.ndarray, ...]:
        """cos, sin of R lambda' and cos of 2 R lambda' at a level, lambda' = lambda - nu t + shift."""
        return self._phases[(r, level)]

    def _waves(self, level: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(phi, u, v) of every wave at a level."""
        factor = LEVELS[level][2]
        return [
            rh_fields(self.p.waves[r], factor * amp * self.swing[r], *self.phase(r, level))
            for r, amp, *_ in WAVES
        ]

    def geopotential(self, level: int) -> np.ndarray:
        """Noise-free geopotential (m2 s-2) at 500 or 850 hPa, (T, n)."""
        polar, zonal, _, _ = LEVELS[level]
        omega = zonal * RH_OMEGA
        a2 = EARTH_RADIUS_M**2
        out = GRAVITY * polar + a2 * 0.5 * omega * (2 * OMEGA + omega) * self.p.cos_phi**2
        thickness_m = 70.0 if level == 500 else 15.0  # higher heights in the summer hemisphere
        out = out + GRAVITY * thickness_m * self.season
        for phi, _, _ in self._waves(level):
            out += phi
        return out

    def wind(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Non-divergent wind (m s-1) of the zonal flow plus the waves at a level, (T, n)."""
        u = EARTH_RADIUS_M * LEVELS[level][1] * RH_OMEGA * self.p.cos_phi + np.zeros_like(
            self.season
        )
        v = np.zeros_like(u)
        for _, du, dv in self._waves(level):
            u += du
            v += dv
        return u, v

    def _wave_pattern(self, level: int, envelope: np.ndarray | None = None) -> np.ndarray:
        """Sum over waves of swing * envelope * sin(R lambda'): a quarter wavelength east
        of the height ridges (warm advection ahead of ridges, ascent ahead of troughs
        for its negative)."""
        out = np.zeros_like(self.season)
        for r, *_ in WAVES:
            shape = self.p.waves[r]["bhat"] if envelope is None else envelope
            out += self.swing[r] * shape * self.phase(r, level)[1]
        return out

    @cached_property
    def flow_temperature(self) -> np.ndarray:
        """Temperature wave carried with the flow, roughly in [-3, 3]."""
        return self._wave_pattern(850)

    @cached_property
    def ascent(self) -> np.ndarray:
        """Large-scale ascent index east of the 500 hPa troughs, in the storm tracks."""
        track = np.exp(-(((np.abs(self.p.lat) - 47.0) / 22.0) ** 2))
        return -self._wave_pattern(500, track)

    # ---- temperature
    def temperature(self, level: int | str) -> np.ndarray:
        """Noise-free temperature (K) at 500 or 850 hPa or at 2 m ("2m"), (T, n)."""
        land, s2 = self.p.lsm, self.p.sin_phi**2
        if level == 500:
            return (
                266.0 - 30.0 * s2 + (4.0 + 2.0 * land) * self.season + 2.5 * self.flow_temperature
            )
        if level == 850:
            return (
                289.0
                - 42.0 * s2
                + (4.0 + 9.0 * land) * self.season
                + 1.5 * land * self.diurnal
                + 3.5 * self.flow_temperature
            )
        return (
            300.0
            - 48.0 * s2
            + (3.0 + 14.0 * land) * self.season
            + (0.8 + 9.2 * land) * self.diurnal
            - 6.5e-3 * self.p.orog
            + 3.0 * self.flow_temperature
        )

    @cached_property
    def t850(self) -> np.ndarray:
        return self.temperature(850)

    # ---- precipitation
    @cached_property
    def itcz(self) -> np.ndarray:
        """Seasonal ITCZ band, 1 at its centre (5N on average, following the sun 40 days late)."""
        centre = 5.0 + 0.4 * np.rad2deg(_declination(self.times, lag_days=40.0))
        return np.exp(-(((self.p.lat - centre[:, None]) / 7.0) ** 2))

    def _moving_waves(
        self, wavelengths_km: Sequence[float], periods_h: Sequence[float], seed: int
    ) -> np.ndarray:
        """Unit-variance sum of sin(k_i p.e_i + w_i t + c_i), fixed random unit vectors e_i.

        ``seed`` is a constant of the world (where weather happens), not the noise seed.
        """
        rng = np.random.default_rng(seed)
        out = np.zeros_like(self.season)
        for wavelength, period in zip(wavelengths_km, periods_h, strict=True):
            e = rng.normal(size=3)
            e /= np.linalg.norm(e)
            arg = (2 * np.pi * EARTH_RADIUS_KM / wavelength) * dot(self.p.xyz, e)
            start = rng.uniform(0, 2 * np.pi)
            wt = 2 * np.pi * np.mod(self.seconds / (3600.0 * period), 1.0) + start
            out += np.sin(arg) * np.cos(wt)[:, None] + np.cos(arg) * np.sin(wt)[:, None]
        return out * np.sqrt(2.0 / len(wavelengths_km))

    @cached_property
    def cells(self) -> np.ndarray:
        """Convective pattern (unit variance, 150-350 km waves): its rare peaks are cells
        ~50-150 km across that live a few hours."""
        rng = np.random.default_rng(2718)
        wavelengths = np.exp(rng.uniform(np.log(150.0), np.log(350.0), 12))
        periods = rng.uniform(4.0, 12.0, 12) * rng.choice([-1.0, 1.0], 12)
        return self._moving_waves(wavelengths, periods, 2719)

    @cached_property
    def mesoscale(self) -> np.ndarray:
        """Rain-band structure of 700-1500 km evolving over days, unit variance."""
        return self._moving_waves(
            (700.0, 900.0, 1100.0, 1300.0, 1500.0, 800.0),
            (30.0, 40.0, 50.0, 60.0, 70.0, 45.0),
            31415,
        )

    def precipitation(self) -> np.ndarray:
        """Noise-free, uncapped 6-hour precipitation in mm, (T, n): exactly zero where
        nothing exceeds (see :func:`_cap_precipitation`)."""
        moist = np.exp((self.t850 - 280.0) / 16.0)  # Clausius-Clapeyron-like, ~6 %/K
        subtropics = np.exp(-(((np.abs(self.p.lat) - 25.0) / 8.0) ** 2))
        x_ls = 0.8 * self.ascent + 0.5 * self.mesoscale + self.itcz - 0.6 * subtropics - 0.55
        large_scale = 4.5 * moist * np.maximum(x_ls, 0.0) ** 1.5
        trigger = (
            1.2 * self.itcz + 0.8 * self.p.lsm * self.afternoon + 0.3 * np.maximum(self.ascent, 0)
        )
        envelope = np.clip(0.6 * moist * trigger, 0.0, 1.0)
        excess = np.maximum(self.cells - (2.5 - 1.5 * envelope), 0.0)  # in standard deviations
        convective = 12.0 * moist * excess**2
        return large_scale + convective

    @cached_property
    def surface_wind(self) -> tuple[np.ndarray, np.ndarray]:
        """850 hPa wind slowed by friction (more over land) and turned toward low pressure."""
        u, v = self.wind(850)
        land = self.p.lsm
        speed = 0.6 * (1.0 - 0.3 * land)
        turn = np.deg2rad(15.0 + 15.0 * land) * np.tanh(self.p.lat / 8.0)  # ccw in the north
        c, s = speed * np.cos(turn), speed * np.sin(turn)
        return u * c - v * s, u * s + v * c


# --------------------------------------------------------------------------- variables

_FIELDS: dict[str, Callable[[_Frame], np.ndarray]] = {
    "z_500": lambda f: f.geopotential(500),
    "z_850": lambda f: f.geopotential(850),
    "t_500": lambda f: f.temperature(500),
    "t_850": lambda f: f.t850,
    "t2m": lambda f: f.temperature("2m"),
    "u10": lambda f: f.surface_wind[0],
    "v10": lambda f: f.surface_wind[1],
    "tp": lambda f: f.precipitation(),
    "insolation": lambda f: SOLAR_CONSTANT * np.maximum(f.cos_zenith, 0.0),
}


def _cap_precipitation(total_mm: np.ndarray) -> np.ndarray:
    """mm to m with a soft cap on the extremes (linear for ordinary amounts)."""
    return 1e-3 * TP_CAP_MM * np.tanh(total_mm / TP_CAP_MM)


def _check_variables(variables: Iterable[str] | str) -> list[str]:
    names = [variables] if isinstance(variables, str) else list(variables)
    unknown = [v for v in names if v not in VARIABLES]
    if unknown:
        raise WorkbenchError(
            f"unknown variable(s) {unknown} for the analytic world; choose from {list(VARIABLES)}"
        )
    return names


def _check_points(latitude, longitude) -> tuple[np.ndarray, np.ndarray]:
    lat = np.ascontiguousarray(latitude, dtype=np.float64)
    lon = np.ascontiguousarray(longitude, dtype=np.float64)
    if lat.ndim != 1 or lon.shape != lat.shape:
        raise WorkbenchError(
            f"latitude and longitude must be 1-D of equal length, got shapes {lat.shape} and {lon.shape}"
        )
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()) or np.any(np.abs(lat) > 90.0):
        raise WorkbenchError("latitude/longitude must be finite degrees, latitude within [-90, 90]")
    return lat, lon


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise WorkbenchError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _time_fields(names: list[str], frame: _Frame) -> dict[str, np.ndarray]:
    """Time-varying fields of one frame with their noise, as float32 (T, n)."""
    out = {}
    hours = np.floor(frame.seconds / 3600.0).astype(np.int64) + 2**31  # non-negative rng keys
    for name in names:
        field = _FIELDS[name](frame)
        if name in NOISE_STD:
            index = list(VARIABLES).index(name)
            basis = frame.p.noise_basis(index)
            noise = NOISE_STD[name] * _noise(basis, hours, frame.p.seed, index)
            field = field * np.exp(noise) if name == "tp" else field + noise
        if name == "tp":
            field = _cap_precipitation(field)
        out[name] = field.astype(np.float32)
    return out


def evaluate(
    variables: Iterable[str] | str,
    latitude: np.ndarray,
    longitude: np.ndarray,
    times: np.ndarray,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The analytic world at points and times.

    ``latitude``/``longitude``: 1-D degree arrays of length n; ``times``: 1-D datetime64
    (length T). Returns float32 arrays, (T, n) for time-varying variables and (n,) for the
    statics ``orog`` and ``lsm``. A point's values never depend on the other points.
    """
    names = _check_variables(variables)
    lat, lon = _check_points(latitude, longitude)
    points = _Points(lat, lon, _check_seed(seed))
    dynamic = [v for v in names if not VARIABLES[v]["static"]]
    out = _time_fields(dynamic, _Frame(points, _to_times(times))) if dynamic else {}
    for name in names:
        if VARIABLES[name]["static"]:
            out[name] = getattr(points, name).astype(np.float32)
    return {name: out[name] for name in names}


def generate(
    grid: Grid,
    times: np.ndarray,
    variables: Iterable[str] = DEFAULT_VARIABLES,
    seed: int = 0,
    chunk_times: int = 32,
    progress: bool = False,
) -> xr.Dataset:
    """The analytic world on ``grid`` as a canonical dataset (dims ``time``, ``grid``).

    Time-varying fields are evaluated ``chunk_times`` steps at a time (bounded memory),
    statics once; values equal :func:`evaluate` at the same points and times.
    """
    names = _check_variables(variables)
    if chunk_times < 1:
        raise WorkbenchError(f"chunk_times must be >= 1, got {chunk_times}")
    lat, lon = _check_points(grid.latitude, grid.longitude)
    t = _to_times(times)
    points = _Points(lat, lon, _check_seed(seed))
    dynamic = [v for v in names if not VARIABLES[v]["static"]]
    arrays = {v: np.empty((t.size, lat.size), dtype=np.float32) for v in dynamic}
    starts: Iterable[int] = range(0, t.size, chunk_times) if dynamic else range(0)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"analytic world on {grid.name}", unit="chunk")
    for start in starts:
        chunk = t[start : start + chunk_times]
        for name, value in _time_fields(dynamic, _Frame(points, chunk)).items():
            arrays[name][start : start + chunk.size] = value
    data_vars = {}
    for name in names:
        attrs = {"units": VARIABLES[name]["units"], "long_name": VARIABLES[name]["long_name"]}
        if VARIABLES[name]["static"]:
            data_vars[name] = (("grid",), getattr(points, name).astype(np.float32), attrs)
        else:
            data_vars[name] = (("time", "grid"), arrays[name], attrs)
    return xr.Dataset(
        data_vars,
        coords={
            "time": ("time", t.astype("datetime64[ns]")),
            "latitude": ("grid", lat),
            "longitude": ("grid", lon),
        },
        attrs={**grid_attrs(grid), "source": "workbench analytic world", "seed": int(seed)},
    )
