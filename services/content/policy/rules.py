"""The publishing rules as pure functions of time: no database, no HTTP.

Everything is computed in the community's own zone: quiet hours are local wall-clock times
(a window may wrap midnight, `23:00`-`08:00`), the promotion cap counts per local day (a
day in a zone with daylight saving lasts 23 or 25 hours), and the minimum gap is plain
elapsed time. `next_allowed` moves a wanted time forward until every rule holds, which is
what a refusal names as the next allowed time and what best times search over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.common.db import rfc3339

DEFAULT_QUIET = (time(23, 0), time(8, 0))
DEFAULT_MAX_PROMOTIONS = 2
DEFAULT_MIN_GAP_MINUTES = 60


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def contains(self, local: time) -> bool:
        """Whether this local wall-clock time is quiet ([start, end), wrapping midnight)."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first instant at or after `moment` (inside the window) where the window is over."""
        local = moment.astimezone(zone)
        day = local.date()
        if not (self.start < self.end) and local.time() >= self.start:
            day += timedelta(days=1)  # the window wraps: it ends tomorrow morning
        return local_instant(day, self.end, zone)


@dataclass(frozen=True)
class Policy:
    quiet: QuietHours | None
    max_promotions_per_day: int
    min_gap: timedelta


DEFAULT_POLICY = Policy(QuietHours(*DEFAULT_QUIET), DEFAULT_MAX_PROMOTIONS, timedelta(minutes=DEFAULT_MIN_GAP_MINUTES))


@dataclass(frozen=True)
class Booked:
    """A post already scheduled or published: when, and whether it is a promotion."""

    at: datetime
    promotion: bool


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time. A time that a spring-forward gap skips
    maps to the first instant after the gap (the wall clock jumps over it)."""
    naive = datetime.combine(day, at)
    moment = naive.replace(tzinfo=zone).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) == naive:
        return moment
    # Inside a gap: fold=0 reads the time with the offset before the jump (an instant after
    # the gap), fold=1 with the offset after it (an instant before). The gap ends at the
    # first instant between them whose wall clock has passed `naive`: search for it.
    low, high = naive.replace(tzinfo=zone, fold=1).astimezone(UTC), moment
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def local_day_bounds(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local day holding `moment` (23, 24 or 25 hours long)."""
    day = moment.astimezone(zone).date()
    return local_instant(day, time(0), zone), local_instant(day + timedelta(days=1), time(0), zone)


@dataclass(frozen=True)
class Breach:
    rule: str  # quiet-hours, promotion-cap, min-gap
    reason: str
    moved_to: datetime  # the earliest instant this rule alone could allow


def first_breach(
    at: datetime, zone: ZoneInfo, policy: Policy, booked: Sequence[Booked], *, promotion: bool
) -> Breach | None:
    """The first rule that `at` breaks (quiet hours, then the cap, then the gap), if any."""
    if policy.quiet is not None and policy.quiet.contains(at.astimezone(zone).time()):
        q = policy.quiet
        return Breach(
            "quiet-hours",
            f"{at.astimezone(zone):%H:%M} is inside the quiet hours {q.start:%H:%M}-{q.end:%H:%M} ({zone.key})",
            policy.quiet.end_after(at, zone),
        )
    if promotion:
        start, end = local_day_bounds(at, zone)
        same_day = sum(1 for b in booked if b.promotion and start <= b.at < end)
        if same_day >= policy.max_promotions_per_day:
            return Breach(
                "promotion-cap",
                f"{at.astimezone(zone).date()} already has {same_day} promotion(s); the cap is "
                f"{policy.max_promotions_per_day} per local day ({zone.key})",
                end,
            )
    if policy.min_gap > timedelta(0):
        close = [b.at for b in booked if abs(b.at - at) < policy.min_gap]
        if close:
            return Breach(
                "min-gap",
                f"another post is due at {rfc3339(min(close))}, closer than {_minutes(policy.min_gap)} minutes",
                max(close) + policy.min_gap,
            )
    return None


def next_allowed(
    at: datetime, zone: ZoneInfo, policy: Policy, booked: Sequence[Booked], *, promotion: bool, max_steps: int = 1000
) -> datetime | None:
    """The earliest instant at or after `at` that breaks no rule (None if none is found in
    `max_steps` moves, e.g. a cap of zero promotions)."""
    for _ in range(max_steps):
        breach = first_breach(at, zone, policy, booked, promotion=promotion)
        if breach is None:
            return at
        at = breach.moved_to
    return None


def _minutes(gap: timedelta) -> int:
    return int(gap.total_seconds() // 60)
