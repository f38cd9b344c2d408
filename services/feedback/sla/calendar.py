"""Business-hours arithmetic: adding business minutes to an instant, and counting them.

A calendar is a community's working days (ISO weekdays, 1 = Monday) and a daily window
`[start, end)` in its time zone, the way Zendesk and Chatwoot count. Each day's window is
placed in local time and converted to UTC on its own, so a daylight-saving change moves
the UTC instants of the window, never its length in wall-clock hours; a local time that
does not exist (a spring-forward gap) is read with the offset before the gap, as RFC 5545
does (02:30 in a one-hour gap is 03:30 after it), and an ambiguous one (fall back) is its
first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 3660  # a calendar with no working day would loop forever; ten years is plenty


@dataclass(frozen=True)
class Calendar:
    timezone: str
    days: frozenset[int]
    start: time
    end: time

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)  # fold=0: see the module docstring


def windows(calendar: Calendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's working windows in UTC that end after `since`, in order (clipped to it)."""
    zone = calendar.zone
    day = since.astimezone(zone).date() - timedelta(days=1)
    for _ in range(MAX_DAYS):
        if day.isoweekday() in calendar.days:
            opens, closes = _utc(day, calendar.start, zone), _utc(day, calendar.end, zone)
            if closes > since:
                yield max(opens, since), closes
        day += timedelta(days=1)


def add_business_minutes(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """The instant `minutes` working minutes after `start`."""
    remaining = timedelta(minutes=minutes)
    for opens, closes in windows(calendar, start):
        if opens + remaining <= closes:
            return opens + remaining
        remaining -= closes - opens
    raise ValueError("the calendar has no working time")


def business_minutes_between(calendar: Calendar, start: datetime, end: datetime) -> int:
    """Whole working minutes between two instants (0 if `end` is not after `start`)."""
    if end <= start:
        return 0
    total = timedelta()
    for opens, closes in windows(calendar, start):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return int(total.total_seconds() // 60)


def wall_minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))
