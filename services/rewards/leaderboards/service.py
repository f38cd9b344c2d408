"""Leaderboards from the `period_points` index: top N by an index scan, "me" by a COUNT.

Ranking: points descending, then whoever reached those points first, then member id, so
every member has exactly one rank and equal points never share or swap places.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.earning.models import Community
from services.rewards.leaderboards.models import PeriodPoints
from services.rewards.sql import greatest, insert_rows, row_params, table_of

POINTS = table_of(PeriodPoints)
COMMUNITIES = table_of(Community)

Period = Literal["week", "month", "all"]
ALL_TIME_START = date(1970, 1, 1)
DEFAULT_TIMEZONE = "Asia/Shanghai"


def period_start(period: Period, local_date: date) -> date:
    if period == "week":
        return local_date - timedelta(days=local_date.weekday())  # ISO weeks start on Monday
    if period == "month":
        return local_date.replace(day=1)
    return ALL_TIME_START


@dataclass(frozen=True)
class Earned:
    """Points a member earned in a community on a local day (at `at`)."""

    community_id: uuid.UUID
    member_id: uuid.UUID
    local_date: date
    points: int
    at: datetime


async def add_points(session: AsyncSession, earned: Iterable[Earned]) -> None:
    """Add awards to the week, month and all-time rows (one multi-row upsert)."""
    totals: dict[tuple[uuid.UUID, str, date, uuid.UUID], tuple[int, datetime]] = {}
    for item in earned:
        for period in ("week", "month", "all"):
            key = (item.community_id, period, period_start(period, item.local_date), item.member_id)  # type: ignore[arg-type]
            points, at = totals.get(key, (0, item.at))
            totals[key] = (points + item.points, max(at, item.at))
    if not totals:
        return
    columns = ("community_id", "period", "period_start", "member_id", "points", "reached_at")
    insert = insert_rows(session, POINTS, columns)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[POINTS.c.community_id, POINTS.c.period, POINTS.c.period_start, POINTS.c.member_id],
            set_={
                "points": POINTS.c.points + insert.excluded.points,
                "reached_at": greatest(session, POINTS.c.reached_at, insert.excluded.reached_at),
            },
        ),
        row_params(
            session,
            columns,
            [
                {
                    "community_id": community_id,
                    "period": period,
                    "period_start": start,
                    "member_id": member_id,
                    "points": points,
                    "reached_at": at,
                }
                for (community_id, period, start, member_id), (points, at) in totals.items()
            ],
        ),
    )


async def current_start(session: AsyncSession, community_id: uuid.UUID, period: Period, now: datetime) -> date:
    """The start of the period that is running now in the community's time zone."""
    timezone = await session.scalar(sa.select(COMMUNITIES.c.timezone).where(COMMUNITIES.c.id == community_id))
    today = now.astimezone(ZoneInfo(timezone or DEFAULT_TIMEZONE)).date()
    return period_start(period, today)


@dataclass(frozen=True)
class Ranked:
    rank: int
    member_id: uuid.UUID
    points: int


async def top(session: AsyncSession, community_id: uuid.UUID, period: Period, start: date, limit: int) -> list[Ranked]:
    rows = await session.execute(
        sa.select(POINTS.c.member_id, POINTS.c.points)
        .where(
            POINTS.c.community_id == community_id,
            POINTS.c.period == period,
            POINTS.c.period_start == start,
            POINTS.c.points > 0,
        )
        .order_by(POINTS.c.points.desc(), POINTS.c.reached_at, POINTS.c.member_id)
        .limit(limit)
    )
    return [Ranked(index + 1, row.member_id, row.points) for index, row in enumerate(rows)]


async def rank_of(
    session: AsyncSession, community_id: uuid.UUID, period: Period, start: date, member_id: uuid.UUID
) -> Ranked | None:
    """The member's rank: one plus how many members are ahead (a COUNT over the index)."""
    partition = (
        POINTS.c.community_id == community_id,
        POINTS.c.period == period,
        POINTS.c.period_start == start,
    )
    # One round trip: the member's row, and two index range counts (more points; equal
    # points reached earlier) rather than one OR filter over the whole partition, so the
    # planner turns each into an index-only range count.
    mine = (
        sa.select(POINTS.c.points, POINTS.c.reached_at).where(*partition, POINTS.c.member_id == member_id).cte("mine")
    )
    more = sa.select(sa.func.count()).where(*partition, POINTS.c.points > mine.c.points).scalar_subquery()
    tied = (
        sa.select(sa.func.count())
        .where(
            *partition,
            POINTS.c.points == mine.c.points,
            sa.tuple_(POINTS.c.reached_at, POINTS.c.member_id)
            < sa.tuple_(mine.c.reached_at, sa.literal(member_id, sa.Uuid())),
        )
        .scalar_subquery()
    )
    row = (
        await session.execute(sa.select(mine.c.points, (more + tied).label("ahead")).where(mine.c.points > 0))
    ).one_or_none()
    if row is None:
        return None
    return Ranked(int(row.ahead or 0) + 1, member_id, row.points)


async def drop_member(session: AsyncSession, member_id: uuid.UUID, community_ids: Iterable[uuid.UUID]) -> None:
    """Take an erased member off the leaderboards of these communities (derived rows; the
    ledger stays). Naming the communities keeps the delete on the primary key."""
    ids = list(community_ids)
    if ids:
        await session.execute(POINTS.delete().where(POINTS.c.community_id.in_(ids), POINTS.c.member_id == member_id))
