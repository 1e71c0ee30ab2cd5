"""Forcings computed at sampling time, as anemoi-datasets' ``forcings`` source computes them.

Any dataset can name them in a sampling config (``forcings: [cos_solar_zenith_angle, ...]``)
without storing them; a dataset variable of the same name wins (sampling reads it instead).
Definitions follow earthkit-data's forcings source, which anemoi-datasets uses, and
earthkit-meteo's solar module:

- ``cos/sin_latitude``, ``cos/sin_longitude``: of the point's latitude / longitude;
- ``cos/sin_julian_day``: of the fractional day of the year (1 January 00 UTC = 0) as an angle,
  ``2 pi day / 365.25``;
- ``cos/sin_local_time``: of the local solar time, ``(UTC hours + longitude / 15) mod 24``, as
  an angle ``2 pi hours / 24`` (cos = 1 at local midnight, -1 at local noon);
- ``cos_solar_zenith_angle``: instantaneous, from earthkit-meteo's Fourier series for the
  declination and the equation of time, **clipped at 0** (night is 0), in [0, 1];
- ``insolation``: anemoi's (deprecated) alias of ``cos_solar_zenith_angle``: normalised, in
  [0, 1], not W m-2 (multiply by the solar constant, 1361 W m-2, for a flux).

Every function takes ``times`` (numpy datetime64, UTC) or a :class:`TimeParts` (a calendar-aware
caller gives the day of the year and seconds of the day itself), ``latitude`` and ``longitude``
(degrees, [grid]) and returns float32 [time, grid], computed in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import WorkbenchError

DAYS_PER_YEAR = 365.25  # earthkit's year for the julian-day angle and the solar series


@dataclass(frozen=True)
class TimeParts:
    """The parts of a time axis the forcings need, [time] each."""

    day_of_year: np.ndarray  # fractional day of the year, 1 January 00 UTC = 0
    seconds_of_day: np.ndarray  # seconds since 00 UTC
    days_per_year: float = DAYS_PER_YEAR  # the year that day_of_year turns once a cycle in


def time_parts(times: np.ndarray | TimeParts) -> TimeParts:
    """Day of the year and seconds of the day of numpy datetime64 ``times`` (a TimeParts is
    returned as it is)."""
    if isinstance(times, TimeParts):
        return times
    t = np.atleast_1d(np.asarray(times))
    if not np.issubdtype(t.dtype, np.datetime64):
        raise WorkbenchError(f"computed forcings need datetime64 times, got {t.dtype}; give a "
                             "forcings.TimeParts (day of year, seconds of day) for other calendars")
    t = t.astype("datetime64[ns]")
    year_start = t.astype("datetime64[Y]").astype("datetime64[ns]")
    day_start = t.astype("datetime64[D]").astype("datetime64[ns]")
    return TimeParts(day_of_year=(t - year_start) / np.timedelta64(1, "D"),
                     seconds_of_day=(t - day_start) / np.timedelta64(1, "s"))


def _inputs(times, latitude, longitude) -> tuple[TimeParts, np.ndarray, np.ndarray]:
    """Time parts and float64 latitude, longitude (1-D, one length) of a forcing's inputs."""
    lat, lon = np.asarray(latitude, np.float64), np.asarray(longitude, np.float64)
    if lat.ndim != 1 or lat.shape != lon.shape:
        raise WorkbenchError(f"computed forcings need 1-D latitude and longitude of one length, "
                             f"got shapes {lat.shape} and {lon.shape}")
    return time_parts(times), lat, lon


def _grid(values: np.ndarray, parts: TimeParts, points: np.ndarray) -> np.ndarray:
    """Values that broadcast to [time, grid] ([grid], [time, 1], [time, grid]) as float32."""
    shape = (parts.day_of_year.size, points.size)
    return np.ascontiguousarray(np.broadcast_to(values, shape), dtype=np.float32)


# --------------------------------------------------------------------------- position


def cos_latitude(times, latitude, longitude) -> np.ndarray:
    parts, lat, _ = _inputs(times, latitude, longitude)
    return _grid(np.cos(np.deg2rad(lat)), parts, lat)


def sin_latitude(times, latitude, longitude) -> np.ndarray:
    parts, lat, _ = _inputs(times, latitude, longitude)
    return _grid(np.sin(np.deg2rad(lat)), parts, lat)


def cos_longitude(times, latitude, longitude) -> np.ndarray:
    parts, _, lon = _inputs(times, latitude, longitude)
    return _grid(np.cos(np.deg2rad(lon)), parts, lon)


def sin_longitude(times, latitude, longitude) -> np.ndarray:
    parts, _, lon = _inputs(times, latitude, longitude)
    return _grid(np.sin(np.deg2rad(lon)), parts, lon)


# --------------------------------------------------------------------------- time


def julian_day_angle(parts: TimeParts) -> np.ndarray:
    """The day of the year as an angle (rad), [time]."""
    return 2 * np.pi * parts.day_of_year / parts.days_per_year


def local_time_hours(parts: TimeParts, longitude: np.ndarray) -> np.ndarray:
    """Local solar time in hours, [time, grid]: UTC hours plus longitude / 15, mod 24."""
    return (parts.seconds_of_day[:, None] / 3600.0 + longitude[None, :] / 15.0) % 24.0


def cos_julian_day(times, latitude, longitude) -> np.ndarray:
    parts, lat, _ = _inputs(times, latitude, longitude)
    return _grid(np.cos(julian_day_angle(parts))[:, None], parts, lat)


def sin_julian_day(times, latitude, longitude) -> np.ndarray:
    parts, lat, _ = _inputs(times, latitude, longitude)
    return _grid(np.sin(julian_day_angle(parts))[:, None], parts, lat)


def cos_local_time(times, latitude, longitude) -> np.ndarray:
    parts, _, lon = _inputs(times, latitude, longitude)
    return _grid(np.cos(2 * np.pi * local_time_hours(parts, lon) / 24.0), parts, lon)


def sin_local_time(times, latitude, longitude) -> np.ndarray:
    parts, _, lon = _inputs(times, latitude, longitude)
    return _grid(np.sin(2 * np.pi * local_time_hours(parts, lon) / 24.0), parts, lon)


# --------------------------------------------------------------------------- sun


def solar_declination(parts: TimeParts) -> tuple[np.ndarray, np.ndarray]:
    """Declination (degrees) and equation-of-time correction (hour-degrees: degrees of hour
    angle), [time] each: earthkit-meteo's Fourier series in the year angle."""
    a = julian_day_angle(parts)
    declination = (0.396372 - 22.91327 * np.cos(a) + 4.025430 * np.sin(a)
                   - 0.387205 * np.cos(2 * a) + 0.051967 * np.sin(2 * a)
                   - 0.154527 * np.cos(3 * a) + 0.084798 * np.sin(3 * a))
    correction = (0.004297 + 0.107029 * np.cos(a) - 1.837877 * np.sin(a)
                  - 0.837378 * np.cos(2 * a) - 2.340475 * np.sin(2 * a))
    return declination, correction


def cos_solar_zenith_angle(times, latitude, longitude) -> np.ndarray:
    """Instantaneous cosine of the solar zenith angle, clipped at 0 (night), [time, grid]."""
    parts, lat, lon = _inputs(times, latitude, longitude)
    declination, correction = solar_declination(parts)
    decl, phi = np.deg2rad(declination)[:, None], np.deg2rad(lat)[None, :]
    hour_angle = np.deg2rad((parts.seconds_of_day[:, None] / 3600.0 - 12.0) * 15.0
                            + lon[None, :] + correction[:, None])
    cos_sza = np.sin(decl) * np.sin(phi) + np.cos(decl) * np.cos(phi) * np.cos(hour_angle)
    return _grid(np.clip(cos_sza, 0.0, None), parts, lat)


Forcing = Callable[[np.ndarray | TimeParts, np.ndarray, np.ndarray], np.ndarray]

COMPUTED_FORCINGS: dict[str, Forcing] = {
    "cos_latitude": cos_latitude,
    "sin_latitude": sin_latitude,
    "cos_longitude": cos_longitude,
    "sin_longitude": sin_longitude,
    "cos_julian_day": cos_julian_day,
    "sin_julian_day": sin_julian_day,
    "cos_local_time": cos_local_time,
    "sin_local_time": sin_local_time,
    "cos_solar_zenith_angle": cos_solar_zenith_angle,
    "insolation": cos_solar_zenith_angle,  # anemoi's alias: normalised, not W m-2
}
NAMES = tuple(COMPUTED_FORCINGS)


def computed_forcing(name: str, times, latitude, longitude) -> np.ndarray:
    """The computed forcing ``name`` at ``times`` and the points, float32 [time, grid]."""
    if name not in COMPUTED_FORCINGS:
        raise WorkbenchError(f"unknown computed forcing {name!r}; known: {', '.join(NAMES)}")
    return COMPUTED_FORCINGS[name](times, latitude, longitude)
