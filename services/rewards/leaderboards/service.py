"""Leaderboards from the `period_points` index: top N by an index scan in board order; "me"
from the `period_points_counts` histogram (members on higher values) plus an index range
count of the members tied on my points who got there first.

Ranking: points descending, then whoever reached those points first, then member id, so
every member has exactly one rank and equal points never share or swap places.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, PreparedRead, table_of
from services.rewards.earning.models import Community
from services.rewards.leaderboards.models import PeriodPoints, PeriodPointsCount
from services.rewards.sql import insert_rows, row_params

POINTS = table_of(PeriodPoints)
COUNTS = table_of(PeriodPointsCount)
BOARD = ("community_id", "period", "period_start")
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
    """Add awards to the week, month and all-time rows and move those members between
    values in the histogram: one statement for both tables. The awards go as they are (one
    array per field); the server spreads them over the periods and sums them per row."""
    items = list(earned)
    if not items:
        return
    connection = await session.connection()
    await connection.exec_driver_sql(
        ADD_POINTS,
        (
            [e.community_id for e in items],
            [e.member_id for e in items],
            [e.local_date for e in items],
            [e.points for e in items],
            [e.at for e in items],
        ),
    )


# $1..$5: the awards' community ids, member ids, local days, points and times.
# `period_start` in SQL: the ISO week's Monday, the month's first day, 1970-01-01 for all time.
# Every row is written in key order, so concurrent batches lock shared rows in the same
# order. The upsert RETURNs the rows' new totals; joined back to what was added they give
# the old ones, and the members' moves between values are netted per value into the
# histogram (members whose total did not change do not move; 0 is no value).
ADD_POINTS = """WITH earned AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::bigint[], $5::timestamptz[])
        AS e(community_id, member_id, local_date, points, at)
),
src AS (
    SELECT e.community_id, p.period, p.period_start, e.member_id,
        sum(e.points)::bigint AS points, max(e.at) AS reached_at
    FROM earned e CROSS JOIN LATERAL (VALUES
        ('week', e.local_date - (extract(isodow FROM e.local_date)::int - 1)),
        ('month', date_trunc('month', e.local_date::timestamp)::date),
        ('all', DATE '1970-01-01')
    ) AS p(period, period_start)
    GROUP BY e.community_id, p.period, p.period_start, e.member_id
),
up AS (
    INSERT INTO period_points (community_id, period, period_start, member_id, points, reached_at)
    SELECT community_id, period, period_start, member_id, points, reached_at FROM src
    ORDER BY community_id, period, period_start, member_id
    ON CONFLICT (community_id, period, period_start, member_id) DO UPDATE SET
        points = period_points.points + excluded.points,
        reached_at = greatest(period_points.reached_at, excluded.reached_at)
    RETURNING community_id, period, period_start, member_id, points
),
moves AS (
    SELECT up.community_id, up.period, up.period_start, up.points - src.points AS points, -1 AS members
    FROM up JOIN src USING (community_id, period, period_start, member_id)
    WHERE src.points <> 0 AND up.points - src.points > 0
    UNION ALL
    SELECT up.community_id, up.period, up.period_start, up.points, 1
    FROM up JOIN src USING (community_id, period, period_start, member_id)
    WHERE src.points <> 0 AND up.points > 0
)
INSERT INTO period_points_counts (community_id, period, period_start, points, members)
SELECT community_id, period, period_start, points, sum(members) FROM moves
GROUP BY community_id, period, period_start, points HAVING sum(members) <> 0
ORDER BY community_id, period, period_start, points
ON CONFLICT (community_id, period, period_start, points) DO UPDATE SET
    members = period_points_counts.members + excluded.members"""
_COUNTS_KEY = [COUNTS.c.community_id, COUNTS.c.period, COUNTS.c.period_start, COUNTS.c.points]
_COUNT_COLUMNS = (*BOARD, "points", "members")


def _move_counts() -> Any:
    insert = insert_rows(COUNTS, _COUNT_COLUMNS)
    return insert.on_conflict_do_update(
        index_elements=_COUNTS_KEY, set_={"members": COUNTS.c.members + insert.excluded.members}
    )


_MOVE_COUNTS = _move_counts()


async def move_counts(session: AsyncSession, moves: Counter[tuple[uuid.UUID, str, date, int]]) -> None:
    """Apply net member moves per (board, points value) to the histogram in one upsert.
    One statement in key order for increments and decrements alike, so two batches lock
    histogram rows in the same order and cannot deadlock each other."""
    rows = [
        {"community_id": c, "period": p, "period_start": s, "points": v, "members": n}
        for (c, p, s, v), n in sorted(moves.items())
        if n != 0
    ]
    if not rows:
        return
    await session.execute(_MOVE_COUNTS, row_params(_COUNT_COLUMNS, rows))


# The read path's statements, built once with named parameters: a GET only binds values
# (no expression building per request; SQLAlchemy and asyncpg reuse the compiled and
# prepared forms).
_TIMEZONE = sa.select(COMMUNITIES.c.timezone).where(COMMUNITIES.c.id == sa.bindparam("community_id"))


def _board(table: sa.Table) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        table.c.community_id == sa.bindparam("community_id"),
        table.c.period == sa.bindparam("period"),
        table.c.period_start == sa.bindparam("period_start"),
    )


_TOP = (
    sa.select(POINTS.c.member_id, POINTS.c.points)
    .where(*_board(POINTS), POINTS.c.points > 0)
    .order_by(POINTS.c.points.desc(), POINTS.c.reached_at, POINTS.c.member_id)  # the ranking index's order
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)


def _rank_statement() -> sa.Select[Any]:
    """The member's row, the members on higher values (a SUM over the histogram) and those
    on the same value who got there first (an index range count over a handful of rows),
    in one round trip."""
    mine = (
        sa.select(POINTS.c.points, POINTS.c.reached_at, POINTS.c.member_id)
        .where(*_board(POINTS), POINTS.c.member_id == sa.bindparam("member_id"))
        .cte("mine")
    )
    more = (
        sa.select(sa.func.coalesce(sa.func.sum(COUNTS.c.members), 0))
        .where(*_board(COUNTS), COUNTS.c.points > mine.c.points)
        .scalar_subquery()
    )
    tied = (
        sa.select(sa.func.count())
        .where(
            *_board(POINTS),
            POINTS.c.points == mine.c.points,
            sa.tuple_(POINTS.c.reached_at, POINTS.c.member_id) < sa.tuple_(mine.c.reached_at, mine.c.member_id),
        )
        .scalar_subquery()
    )
    return sa.select(mine.c.points, more.label("more"), tied.label("tied")).where(mine.c.points > 0)


_RANK = _rank_statement()


# The GET runs them through asyncpg on the read pool (no session): committed data is all a
# leaderboard shows, and this is the service's most frequent read.
_TIMEZONE_READ, _TOP_READ, _RANK_READ = PreparedRead(_TIMEZONE), PreparedRead(_TOP), PreparedRead(_RANK)


async def current_start(db: Database, community_id: uuid.UUID, period: Period, now: datetime) -> date:
    """The start of the period that is running now in the community's time zone."""
    row = await _TIMEZONE_READ.fetch_one(db, community_id=community_id)
    today = now.astimezone(ZoneInfo(row["timezone"] if row else DEFAULT_TIMEZONE)).date()
    return period_start(period, today)


@dataclass(frozen=True)
class Ranked:
    rank: int
    member_id: uuid.UUID
    points: int


async def top(db: Database, community_id: uuid.UUID, period: Period, start: date, limit: int) -> list[Ranked]:
    """The first `limit` members of the board: the first index entries, no sort."""
    rows = await _TOP_READ.fetch_all(db, community_id=community_id, period=period, period_start=start, limit=limit)
    return [Ranked(index + 1, row["member_id"], row["points"]) for index, row in enumerate(rows)]


async def rank_of(
    db: Database, community_id: uuid.UUID, period: Period, start: date, member_id: uuid.UUID
) -> Ranked | None:
    """The member's rank: one plus the members on higher values plus those tied who got
    there first; None until the member has points on this board."""
    row = await _RANK_READ.fetch_one(
        db, community_id=community_id, period=period, period_start=start, member_id=member_id
    )
    if row is None:
        return None
    return Ranked(int(row["more"]) + int(row["tied"]) + 1, member_id, row["points"])


async def drop_member(session: AsyncSession, member_id: uuid.UUID, community_ids: Iterable[uuid.UUID]) -> None:
    """Take an erased member off the leaderboards of these communities (derived rows; the
    ledger stays) and out of their histograms. Naming the communities keeps the delete on
    the primary key."""
    ids = list(community_ids)
    if not ids:
        return
    gone = await session.execute(
        POINTS.delete()
        .where(POINTS.c.community_id.in_(ids), POINTS.c.member_id == member_id)
        .returning(POINTS.c.community_id, POINTS.c.period, POINTS.c.period_start, POINTS.c.points)
    )
    moves: Counter[tuple[uuid.UUID, str, date, int]] = Counter(
        (row.community_id, row.period, row.period_start, row.points) for row in gone if row.points > 0
    )
    for key in moves:
        moves[key] = -moves[key]
    await move_counts(session, moves)
