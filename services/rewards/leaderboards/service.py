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
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, PreparedRead, table_of
from services.rewards.earning.models import Community
from services.rewards.leaderboards.models import PeriodPoints, PeriodPointsCount
from services.rewards.sql import array_rows, insert_rows, row_params

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
    values in the histogram: one statement for both tables."""
    totals: dict[tuple[uuid.UUID, str, date, uuid.UUID], tuple[int, datetime]] = {}
    for item in earned:
        for period in ("week", "month", "all"):
            key = (item.community_id, period, period_start(period, item.local_date), item.member_id)  # type: ignore[arg-type]
            points, at = totals.get(key, (0, item.at))
            totals[key] = (points + item.points, max(at, item.at))
    if not totals:
        return
    rows = [
        {
            "community_id": community_id,
            "period": period,
            "period_start": start,
            "member_id": member_id,
            "points": points,
            "reached_at": at,
        }
        # Key order: concurrent batches lock shared rows in the same order.
        for (community_id, period, start, member_id), (points, at) in sorted(totals.items())
    ]
    # The moves never leave the server.
    await session.execute(_ADD_POINTS, row_params(_ADD_COLUMNS, rows))


_ADD_COLUMNS = ("community_id", "period", "period_start", "member_id", "points", "reached_at")
_POINTS_KEY = [POINTS.c.community_id, POINTS.c.period, POINTS.c.period_start, POINTS.c.member_id]
_COUNTS_KEY = [COUNTS.c.community_id, COUNTS.c.period, COUNTS.c.period_start, COUNTS.c.points]


def _add_points() -> Any:
    """Upsert the rows (from column arrays), RETURNING their new totals; join them
    back to what was added for the old totals; net the moves per value and upsert them into
    the histogram in key order. Members whose total did not change do not move; 0 is no value."""
    src = sa.select(*array_rows(POINTS, _ADD_COLUMNS).c).cte("src")
    insert = postgresql.insert(POINTS).from_select(list(_ADD_COLUMNS), sa.select(*(src.c[c] for c in _ADD_COLUMNS)))
    up = (
        insert.on_conflict_do_update(
            index_elements=_POINTS_KEY,
            set_={
                "points": POINTS.c.points + insert.excluded.points,
                "reached_at": sa.func.greatest(POINTS.c.reached_at, insert.excluded.reached_at),
            },
        )
        .returning(POINTS.c.community_id, POINTS.c.period, POINTS.c.period_start, POINTS.c.member_id, POINTS.c.points)
        .cte("up")
    )
    joined = up.join(src, sa.and_(*(up.c[c] == src.c[c] for c in (*BOARD, "member_id"))))
    old = up.c.points - src.c.points
    board = (up.c.community_id, up.c.period, up.c.period_start)
    moves = sa.union_all(
        sa.select(*board, old.label("points"), sa.literal(-1).label("members"))
        .select_from(joined)
        .where(src.c.points != 0, old > 0),
        sa.select(*board, up.c.points, sa.literal(1).label("members"))
        .select_from(joined)
        .where(src.c.points != 0, up.c.points > 0),
    ).subquery("moves")
    key = (moves.c.community_id, moves.c.period, moves.c.period_start, moves.c.points)
    net = sa.func.sum(moves.c.members)
    counts = postgresql.insert(COUNTS).from_select(
        [*BOARD, "points", "members"],
        sa.select(*key, net).group_by(*key).having(net != 0).order_by(*key),
    )
    return counts.on_conflict_do_update(
        index_elements=_COUNTS_KEY, set_={"members": COUNTS.c.members + counts.excluded.members}
    )


_ADD_POINTS = _add_points()
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
