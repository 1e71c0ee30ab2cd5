"""Time axes in the calendar their data comes in, and time steps.

A dataset's times are numpy ``datetime64`` (the standard, gregorian and proleptic_gregorian
calendars, where the dates fit) or cftime datetimes (360_day, noleap/365_day, all_leap/366_day,
julian, and standard dates outside numpy's range), as xarray decodes them. Everything that
reads, compares, prints or adds times goes through this module, so a 360_day climate run is
sampled, split and scored as a reanalysis is: dates such as 2000-02-30 parse in the calendar
of the times they are compared with (:func:`parse_date`), sort by their fields regardless of
calendar (:func:`date_fields`), print as ISO text (:func:`iso`) and turn into the forcings'
day of the year and seconds of the day in their own year (:func:`time_parts`).

A time axis is usable when it is strictly increasing and evenly spaced
(:func:`check_axis`); its step is a :data:`Duration` such as ``6h`` (catalog entries'
``time_step``, sampling configs' common ``time_step``).
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator

from .errors import WorkbenchError
from .forcings import DAYS_PER_YEAR, TimeParts
from .forcings import time_parts as numpy_time_parts

#: calendars read as cftime datetimes, and the length of their year in days
CFTIME_YEAR_DAYS = {"360_day": 360.0, "noleap": 365.0, "365_day": 365.0, "all_leap": 366.0,
                    "366_day": 366.0, "julian": 365.25}
NUMPY_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")
CALENDARS = (*NUMPY_CALENDARS, *CFTIME_YEAR_DAYS)
_DATE = re.compile(r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})"
                   r"(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?)?\s*$")


# --------------------------------------------------------------------------- steps


def parse_step(text) -> pd.Timedelta:
    """``"6h"``, ``"90min"``, ``"1D"`` as a positive whole number of seconds (ValueError else)."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError("a time step such as 6h, 1h or 90min")
    try:
        step = pd.Timedelta(text.strip())
    except (ValueError, TypeError):
        step = None
    if step is None or pd.isna(step) or step <= pd.Timedelta(0) or step % pd.Timedelta(seconds=1):
        raise ValueError("a time step such as 6h, 1h or 90min")
    return step


def _valid_step(text: str) -> str:
    parse_step(text)
    return text


#: a config value that is a time step (``6h``); pydantic says "should be a time step such as
#: 6h, 1h or 90min" for anything else
Duration = Annotated[str, AfterValidator(_valid_step)]


def step_text(step: pd.Timedelta) -> str:
    """A step as short text: ``6h``, ``90min``, ``1D``... (hours when whole)."""
    seconds = int(step / pd.Timedelta(seconds=1))
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def hours(step) -> float:
    """A timedelta (pandas, numpy or datetime) in hours."""
    return float(pd.Timedelta(step) / pd.Timedelta(hours=1))


# --------------------------------------------------------------------------- calendars


def is_cftime(times) -> bool:
    """True when ``times`` (an array or one time) holds cftime datetimes."""
    first = np.asarray(times).ravel()[:1]
    return first.size > 0 and first.dtype == object and hasattr(first[0], "calendar")


def calendar_name(times) -> str:
    """The calendar of ``times``: a cftime one's own, else ``standard`` (numpy datetime64)."""
    if is_cftime(times):
        return str(np.asarray(times).ravel()[0].calendar)
    return "standard"


def date_fields(text) -> tuple[int, ...]:
    """(year, month, day, hour, minute, second) of an ISO date text, whatever its calendar
    (ValueError when it is not one): two dates of one calendar sort as their fields do."""
    match = _DATE.match(str(text))
    if match is None:
        stamp = pd.Timestamp(text)  # other spellings numpy understands (ValueError else)
        if pd.isna(stamp):
            raise ValueError(text)
        return (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    fields = tuple(int(g) if g else 0 for g in match.groups())
    month, day, hour, minute, second = fields[1:]
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59
            and second <= 59):
        raise ValueError(text)
    return fields


def parse_date(text, like, where: str):
    """``text`` (``2000-02-30``, ``2020-02-29T18:00``) as a time of the calendar of ``like``
    (a time axis): numpy datetime64 or a cftime datetime; a date that calendar lacks (the 30th
    of February in the standard calendar, the 29th in noleap) is a one-line error naming
    ``where`` and the calendar."""
    sample = np.asarray(like).ravel()[:1]
    calendar = calendar_name(like)
    bad = WorkbenchError(f"{where}: {text!r} is not a date of the {calendar} calendar of the "
                         "data; give dates such as 2020-01-01 or 2020-02-29T18:00 that exist "
                         "in it")
    try:
        if not is_cftime(like):
            stamp = pd.Timestamp(text)
            if pd.isna(stamp):
                raise ValueError(text)
            return stamp.to_datetime64()
        import cftime

        year, month, day, hour, minute, second = date_fields(text)
        return cftime.datetime(year, month, day, hour, minute, second, calendar=calendar,
                               has_year_zero=sample[0].has_year_zero)
    except (ValueError, TypeError, OverflowError):
        raise bad from None


def iso(time) -> str:
    """One time as ISO text to the second (``2000-02-30T06:00:00``), in its own calendar."""
    if hasattr(time, "calendar"):
        return time.isoformat()
    return pd.Timestamp(time).isoformat()


def iso_list(times) -> list[str]:
    """:func:`iso` of every time."""
    return [iso(t) for t in np.asarray(times).ravel()]


def to_ns(times) -> np.ndarray:
    """int64 nanoseconds since 1970-01-01 00:00 of the times' own calendar (equal to
    ``datetime64[ns]`` for numpy times): how batches carry times as tensors."""
    values = np.asarray(times)
    if not is_cftime(values):
        return values.astype("datetime64[ns]").astype(np.int64)
    epoch = type(values.ravel()[0])(1970, 1, 1, has_year_zero=values.ravel()[0].has_year_zero)
    micro = datetime.timedelta(microseconds=1)
    return np.array([(t - epoch) // micro for t in values.ravel()],
                    dtype=np.int64).reshape(values.shape) * 1000


def from_ns(ns, like) -> np.ndarray:
    """The times :func:`to_ns` gave ``ns`` for, in the calendar of ``like``."""
    ns = np.asarray(ns, dtype=np.int64)
    if not is_cftime(like):
        return ns.astype("datetime64[ns]")
    first = np.asarray(like).ravel()[0]
    epoch = type(first)(1970, 1, 1, has_year_zero=first.has_year_zero)
    out = np.array([epoch + datetime.timedelta(microseconds=int(v) // 1000) for v in ns.ravel()],
                   dtype=object)
    return out.reshape(ns.shape)


def add(times, deltas) -> np.ndarray:
    """Every time plus every timedelta: [time, delta], in the times' calendar."""
    times = np.atleast_1d(np.asarray(times))
    deltas = pd.to_timedelta(np.atleast_1d(np.asarray(deltas))).values
    if is_cftime(times):
        return np.add.outer(times, deltas.astype("timedelta64[us]").astype(object))
    return np.add.outer(times.astype("datetime64[ns]"), deltas)


def time_parts(times) -> TimeParts:
    """The forcings' day of the year (1 January 00:00 = 0), seconds of the day and days per
    year of ``times`` in their own calendar (360 in a 360_day calendar, 365 in noleap; a
    standard year counts 365.25 days, as earthkit does)."""
    values = np.atleast_1d(np.asarray(times))
    if not is_cftime(values):
        return numpy_time_parts(values)
    seconds = np.array([t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
                        for t in values], dtype=np.float64)
    days = np.array([t.dayofyr - 1 for t in values], dtype=np.float64) + seconds / 86400.0
    year = CFTIME_YEAR_DAYS.get(str(values[0].calendar), DAYS_PER_YEAR)
    return TimeParts(day_of_year=days, seconds_of_day=seconds, days_per_year=year)


# --------------------------------------------------------------------------- axes


def check_axis(times, dataset: str) -> pd.Timedelta | None:
    """The step of an evenly spaced, strictly increasing time axis (None for one time); a
    one-line error naming ``dataset`` and the first bad time for times that go back, repeat
    or change their step (the step most of the axis has is the one it should keep)."""
    values = np.asarray(times)
    if values.size < 2:
        return None
    steps = np.diff(to_ns(values))
    back = np.flatnonzero(steps < 0)
    twice = np.flatnonzero(steps == 0)
    if back.size and (not twice.size or back[0] < twice[0]):
        i = int(back[0])
        raise WorkbenchError(
            f"dataset {dataset!r}: times are not strictly increasing at index {i + 1} "
            f"({iso(values[i])} then {iso(values[i + 1])}); sort and deduplicate the source "
            "(ds.sortby('time').drop_duplicates('time'))")
    if twice.size:
        i = int(twice[0])
        raise WorkbenchError(
            f"dataset {dataset!r}: time {iso(values[i + 1])} appears twice (index {i} and "
            f"{i + 1}); drop the duplicates in the source (ds.drop_duplicates('time'))")
    sizes, counts = np.unique(steps, return_counts=True)
    step = int(sizes[np.argmax(counts)])
    odd = np.flatnonzero(steps != step)
    if odd.size:
        i = int(odd[0])
        usual = step_text(pd.Timedelta(step, "ns"))
        raise WorkbenchError(
            f"dataset {dataset!r}: times are not evenly spaced: {iso(values[i + 1])} (index "
            f"{i + 1}) comes {step_text(pd.Timedelta(int(steps[i]), 'ns'))} after "
            f"{iso(values[i])}, the other steps are {usual}; fill the gap or resample the "
            f"source to one step (ds.resample(time='{usual}'))")
    return pd.Timedelta(step, "ns")
