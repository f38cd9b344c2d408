"""Reading and writing publishing policies, checking a schedule against them, best times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import rfc3339, table_of
from services.common.problems import ProblemError
from services.content.communities.service import hour_histogram, hour_of_week, week_start
from services.content.policy.models import PublishingPolicy
from services.content.policy.rules import (
    DEFAULT_POLICY,
    Booked,
    Policy,
    QuietHours,
    first_breach,
    next_allowed,
)
from services.content.policy.schemas import BestTime, PublishingPolicyUpdate
from services.content.posts.models import Post

POLICIES = table_of(PublishingPolicy)
POSTS = table_of(Post)

HISTORY_WEEKS = 8  # best times look at this many recent local weeks of activity
HORIZON = timedelta(days=7)  # and propose slots within the coming week


class PolicyBreach(ProblemError):
    """Scheduling at this time breaks a rule; `slug` names it, `next_allowed_at` says when."""

    status = 422
    title = "Publishing policy breached"

    def __init__(self, rule: str, reason: str, next_at: datetime | None) -> None:
        when = f"the next allowed time is {rfc3339(next_at)}" if next_at else "no time in reach is allowed"
        super().__init__(
            f"{reason}; {when}.",
            slug=rule,
            title=_TITLES[rule],
            next_allowed_at=rfc3339(next_at) if next_at else None,
        )


_TITLES = {
    "quiet-hours": "Inside the community's quiet hours",
    "promotion-cap": "Promotion cap reached for that local day",
    "min-gap": "Too close to another post",
}


async def load_policy(session: AsyncSession, community_id: uuid.UUID) -> tuple[Policy, bool]:
    """The community's policy and whether it is the default."""
    row = (await session.execute(sa.select(POLICIES).where(POLICIES.c.community_id == community_id))).first()
    if row is None:
        return DEFAULT_POLICY, True
    quiet = QuietHours(row.quiet_start, row.quiet_end) if row.quiet_start is not None else None
    return Policy(quiet, row.max_promotions_per_day, timedelta(minutes=row.min_gap_minutes)), False


def quiet_hours_query(community_id: sa.ColumnElement[uuid.UUID]) -> sa.Select[Any]:
    """The community's publishing policy row as far as other domains need it (`has_policy`,
    `quiet_start`, `quiet_end`), to join into their own one-statement reads; no row: the
    defaults (see `quiet_hours_of`)."""
    return sa.select(sa.literal(True).label("has_policy"), POLICIES.c.quiet_start, POLICIES.c.quiet_end).where(
        POLICIES.c.community_id == community_id
    )


def quiet_hours_of(has_policy: bool | None, start: time | None, end: time | None) -> QuietHours | None:
    """The quiet hours in force, from a `quiet_hours_query` row (all None: no policy row)."""
    if not has_policy:
        return DEFAULT_POLICY.quiet
    return QuietHours(start, end) if start is not None and end is not None else None


async def save_policy(
    session: AsyncSession, community_id: uuid.UUID, data: PublishingPolicyUpdate, now: datetime
) -> Policy:
    values = {
        "quiet_start": data.quiet_hours.start if data.quiet_hours else None,
        "quiet_end": data.quiet_hours.end if data.quiet_hours else None,
        "max_promotions_per_day": data.max_promotions_per_day,
        "min_gap_minutes": data.min_gap_minutes,
        "updated_at": now,
    }
    stmt = postgresql.insert(POLICIES).values(community_id=community_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[POLICIES.c.community_id], set_=values))
    return (await load_policy(session, community_id))[0]


async def lock_community_schedule(session: AsyncSession, community_id: uuid.UUID) -> None:
    """Serialise scheduling in one community until the transaction ends, so two posts
    scheduled at once cannot both pass the gap or the cap against each other."""
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(str(community_id), 0))))


async def booked_posts(
    session: AsyncSession,
    community_id: uuid.UUID,
    start: datetime,
    end: datetime,
    exclude: uuid.UUID | None = None,
) -> list[Booked]:
    """Scheduled and published posts of the community with `publish_at` in [start, end)."""
    query = sa.select(POSTS.c.publish_at, POSTS.c.kind).where(
        POSTS.c.community_id == community_id,
        POSTS.c.status.in_(("scheduled", "published")),
        POSTS.c.publish_at >= start,
        POSTS.c.publish_at < end,
    )
    if exclude is not None:
        query = query.where(POSTS.c.id != exclude)
    return [Booked(row.publish_at, row.kind == "promotion") for row in await session.execute(query)]


def _window(policy: Policy, around: datetime, after: timedelta) -> tuple[datetime, datetime]:
    # Two local days either side cover the cap's local day in any zone; the gap is added on.
    margin = timedelta(days=2) + policy.min_gap
    return around - margin, around + after + margin


async def check_schedule(
    session: AsyncSession,
    community_id: uuid.UUID,
    zone: ZoneInfo,
    publish_at: datetime,
    *,
    promotion: bool,
    post_id: uuid.UUID,
) -> None:
    """Raise `PolicyBreach` (with the next allowed time) unless `publish_at` keeps every rule."""
    policy, _ = await load_policy(session, community_id)
    start, end = _window(policy, publish_at, timedelta(days=30))
    booked = await booked_posts(session, community_id, start, end, exclude=post_id)
    breach = first_breach(publish_at, zone, policy, booked, promotion=promotion)
    if breach is None:
        return
    later = next_allowed(breach.moved_to, zone, policy, booked, promotion=promotion)
    raise PolicyBreach(breach.rule, breach.reason, later)


async def best_times(
    session: AsyncSession, community_id: uuid.UUID, zone: ZoneInfo, now: datetime, *, count: int, promotion: bool
) -> list[BestTime]:
    """The coming week's local hour starts that keep every rule, ranked by the share of the
    community's activity in that hour of the week over the last `HISTORY_WEEKS` weeks
    (ties: the earlier slot first)."""
    local_now = now.astimezone(zone)
    since = week_start(local_now.date()) - timedelta(weeks=HISTORY_WEEKS)
    histogram = await hour_histogram(session, community_id, since)
    total = sum(histogram.values())
    policy, _ = await load_policy(session, community_id)
    start, end = _window(policy, now, HORIZON)
    booked = await booked_posts(session, community_id, start, end)
    # Walk the coming hour starts in UTC steps from the next local hour start, so zones with
    # half-hour offsets and daylight-saving days give real local hour starts.
    slot = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + timedelta(hours=1)
    candidates: list[tuple[float, datetime]] = []
    while slot < now + HORIZON:
        if first_breach(slot, zone, policy, booked, promotion=promotion) is None:
            share = histogram.get(hour_of_week(slot.astimezone(zone)), 0) / total if total else 0.0
            candidates.append((share, slot))
        slot += timedelta(hours=1)
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return [BestTime(at=at, score=round(score, 4)) for score, at in candidates[:count]]
