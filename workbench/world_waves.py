"""The embedded world's moving waves: Rossby-Haurwitz waves R = 4, 5, 6 (Williamson et al.
1992, test case 6) at their analytic phase speeds, amplitudes drifting slowly; their
geopotential and non-divergent wind at any point and time (:mod:`workbench.world` adds the
zonal flow, the levels' tilt and everything else)."""

from __future__ import annotations

from functools import cache

import numpy as np

from .world_earth import EARTH_RADIUS_M, OMEGA, SECONDS_PER_DAY

RH_OMEGA = 7.848e-6  # test case 6: omega = K, s-1

# (R, K_R as a fraction of test case 6's K, amplitude drift period in days, drift phase)
WAVES: tuple[tuple[int, float, float, float], ...] = (
    (4, 0.20, 23.0, 0.0),
    (5, 0.20, 31.0, 2.1),
    (6, 0.19, 17.0, 4.2),
)
DRIFT = 0.3  # K_R(t) = K_R * (1 + DRIFT * sin(2 pi t / P_R + phase))

# level (hPa) -> (polar height m, zonal flow as a fraction of omega, wave factor,
#                 westward shift of the waves in wavelengths: the baroclinic tilt)
LEVELS: dict[int, tuple[float, float, float, float]] = {
    500: (5100.0, 0.31, 1.0, 0.0),
    850: (1250.0, 0.12, 0.7, 0.1),
}


def phase_speed(wavenumber: int) -> float:
    """Angular phase speed nu_R (rad s-1, eastward > 0) of a Rossby-Haurwitz wave (TC6)."""
    r = float(wavenumber)
    return (r * (3 + r) * RH_OMEGA - 2 * OMEGA) / ((1 + r) * (2 + r))


def wave_swing(wavenumber: int, seconds: np.ndarray) -> np.ndarray:
    """Slow amplitude drift K_R(t) / K_R of one wave, shape (T,)."""
    for r, _, period, phase in WAVES:
        if r == wavenumber:
            angle = 2 * np.pi * np.mod(seconds / (period * SECONDS_PER_DAY), 1.0) + phase
            return 1.0 + DRIFT * np.sin(angle)
    raise ValueError(f"no wave with R={wavenumber}")


def rh_profiles(
    wavenumber: int, sin_phi: np.ndarray, cos_phi: np.ndarray
) -> dict[str, np.ndarray]:
    """Test case 6 latitude functions for K = omega = 7.848e-6 s-1.

    ``A`` (its K^2 part; the omega part is the zonal flow), ``B``, ``C`` in s-2 and the
    wind shapes ``u``, ``v`` in s-1 (to be multiplied by a cos/sin of R lambda').
    """
    r, k, w = float(wavenumber), RH_OMEGA, RH_OMEGA
    c = np.maximum(cos_phi, 1e-12)
    cr = c**r
    a_k = 0.25 * k**2 * cr * cr * ((r + 1) * c**2 + (2 * r * r - r - 2) - 2 * r * r / c**2)
    b = 2 * (OMEGA + w) * k / ((r + 1) * (r + 2)) * cr * ((r * r + 2 * r + 2) - (r + 1) ** 2 * c**2)
    cc = 0.25 * k**2 * cr * cr * ((r + 1) * c**2 - (r + 2))
    u = k * c ** (r - 1) * (r * sin_phi**2 - c**2)
    v = -k * r * c ** (r - 1) * sin_phi
    return {"A": a_k, "B": b, "C": cc, "u": u, "v": v}


@cache
def b_max(wavenumber: int) -> float:
    """Maximum over latitude of B(phi), to normalise wave-shaped patterns to 1."""
    phi = np.linspace(-np.pi / 2, np.pi / 2, 3601)
    return float(rh_profiles(wavenumber, np.sin(phi), np.cos(phi))["B"].max())


def rotate(
    cos_x: np.ndarray, sin_x: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of (x - theta) as (T, n) outer products: no trigonometry on (T, n) arrays."""
    ct, st = np.cos(theta)[:, None], np.sin(theta)[:, None]
    return cos_x * ct + sin_x * st, sin_x * ct - cos_x * st


def rh_fields(
    prof: dict[str, np.ndarray], k: np.ndarray, cos1: np.ndarray, sin1: np.ndarray, cos2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geopotential anomaly a^2 (k^2 A + k B cos + k^2 C cos2) and wind (u, v) of one wave.

    ``k`` (T, 1) is K_R(t) / K_TC6; ``cos1``/``sin1`` of R lambda', ``cos2`` of 2 R lambda'.
    """
    a = EARTH_RADIUS_M
    phi = a * a * (k * k * prof["A"] + k * prof["B"] * cos1 + k * k * prof["C"] * cos2)
    return phi, a * k * prof["u"] * cos1, a * k * prof["v"] * sin1


def rossby_haurwitz(
    wavenumber: int,
    latitude: np.ndarray,
    longitude: np.ndarray,
    seconds: np.ndarray,
    amplitude: float = 1.0,
    shift: float = 0.0,
) -> dict[str, np.ndarray]:
    """One noise-free test case 6 wave, (T, n), with K = amplitude * 7.848e-6 s-1.

    ``phi`` (m2 s-2), ``u``, ``v`` (m s-1) at lambda' = lambda - nu_R t + shift (radians).
    """
    lat = np.deg2rad(np.asarray(latitude, dtype=np.float64))
    lam = np.deg2rad(np.asarray(longitude, dtype=np.float64))
    t = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
    prof = rh_profiles(wavenumber, np.sin(lat), np.cos(lat))
    theta = wavenumber * (np.mod(phase_speed(wavenumber) * t, 2 * np.pi) - shift)
    cos1, sin1 = rotate(np.cos(wavenumber * lam), np.sin(wavenumber * lam), theta)
    cos2, _ = rotate(np.cos(2 * wavenumber * lam), np.sin(2 * wavenumber * lam), 2 * theta)
    k = np.full((t.size, 1), float(amplitude))
    phi, u, v = rh_fields(prof, k, cos1, sin1, cos2)
    return {"phi": phi, "u": u, "v": v}
