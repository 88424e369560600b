"""Working hours and holidays, without reading the clock.

A calendar is a time zone and, for each day of the week, the intervals it is open::

    [calendars.office]
    timezone = "Europe/Prague"          # IANA name (default Europe/Prague), checked with zoneinfo
    mon = "08:00-18:00"                 # one interval ...
    fri = "08:00-12:00,13:00-17:00"     # ... or several, ascending, not overlapping
    sat = ""                            # closed (a day that is left out is closed too)

An interval is ``HH:MM-HH:MM`` in the calendar's local time, start included, end excluded; the end
may be ``24:00``. Overnight hours are written as two intervals on two days. Holidays are not part of
the calendar: the caller passes them (a ``frozenset`` of dates, from the database) and a holiday is
closed all day, "day" meaning the date in the calendar's time zone.

Local time comes from ``zoneinfo``, so the days the clocks change are right: on the last Sunday of
March in Prague 08:00 is 06:00 UTC, on the last Sunday of October it is 07:00 UTC.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Europe/Prague"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")   # index = datetime.weekday()
_KEYS = ("timezone", *DAYS)
_INTERVAL = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_MAX_INTERVALS = 12
_MAX_CALENDARS = 50
_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")

Interval = tuple[int, int]   # minutes after local midnight: [start, end)


class CalendarError(ValueError):
    """A calendar definition is wrong; the message names the calendar and the key."""


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: str
    days: tuple[tuple[Interval, ...], ...]   # seven entries, Monday first

    def to_doc(self) -> dict[str, str]:
        doc = {"timezone": self.timezone}
        for key, intervals in zip(DAYS, self.days, strict=True):
            doc[key] = ",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in intervals)
        return doc


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; ``ValueError`` if there is none (zoneinfo caches them)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{name!r} is not a time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone") from exc


def parse_calendar(name: str, doc: Any) -> Calendar:
    """Validate one ``[calendars.NAME]`` table."""
    if not isinstance(doc, dict):
        raise CalendarError(f"calendar {name!r}: must be a table, not {type(doc).__name__}")
    for key in doc:
        if key not in _KEYS:
            near = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise CalendarError(f"calendar {name!r}: unknown key {key!r}{hint}")
    tz = doc.get("timezone", DEFAULT_TIMEZONE)
    try:
        zone(tz)
    except ValueError as exc:
        raise CalendarError(f"calendar {name!r}: timezone: {exc}") from None
    days = tuple(_parse_day(name, key, doc.get(key, "")) for key in DAYS)
    return Calendar(name=name, timezone=tz, days=days)


def parse_calendars(doc: Any) -> dict[str, Calendar]:
    """Validate the ``[calendars]`` table (absent: no calendars): name → :class:`Calendar`."""
    if doc is None:
        return {}
    if not isinstance(doc, dict) or len(doc) > _MAX_CALENDARS:
        raise CalendarError(f"calendars: must be a table of at most {_MAX_CALENDARS} calendars")
    for name in doc:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise CalendarError(f"calendars: {name!r} is not a calendar name ([A-Za-z0-9_]{{1,40}})")
    return {name: parse_calendar(name, cal) for name, cal in doc.items()}


def _parse_day(name: str, key: str, text: Any) -> tuple[Interval, ...]:
    def fail(msg: str) -> CalendarError:
        return CalendarError(f"calendar {name!r}: {key}: {msg}")

    if not isinstance(text, str):
        raise fail(f"must be a string like \"08:00-18:00\", not {type(text).__name__}")
    if not text.strip():
        return ()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > _MAX_INTERVALS:
        raise fail(f"at most {_MAX_INTERVALS} intervals a day")
    out: list[Interval] = []
    for part in parts:
        m = _INTERVAL.fullmatch(part)
        if m is None:
            raise fail(f"{part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise fail(f"{part!r} is not a time of day")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise fail(f"{part!r} ends before it starts (write overnight hours as two days)")
        if out and start < out[-1][1]:
            raise fail(f"{part!r} overlaps or precedes the interval before it")
        out.append((start, end))
    return tuple(out)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def local_time(tz: str, epoch: float) -> datetime:
    """``epoch`` (seconds) as an aware datetime in the zone ``tz``."""
    return datetime.fromtimestamp(epoch, zone(tz))


def is_holiday(cal_or_tz: Calendar | str, epoch: float, holidays: frozenset[date]) -> bool:
    """Whether the date at ``epoch`` in the calendar's (or the named) time zone is a holiday."""
    if not holidays:
        return False
    tz = cal_or_tz.timezone if isinstance(cal_or_tz, Calendar) else cal_or_tz
    return local_time(tz, epoch).date() in holidays


def is_open(cal: Calendar, epoch: float, holidays: frozenset[date] = frozenset()) -> bool:
    """Whether ``cal`` is open at ``epoch`` (a holiday is closed all day)."""
    local = local_time(cal.timezone, epoch)
    if local.date() in holidays:
        return False
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in cal.days[local.weekday()])
