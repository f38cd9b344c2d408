"""The leaderboard histogram (`period_points_counts`) always matches `period_points`, and ranks
read through it equal ranks by brute force: random awards with many ties, erasures, and
concurrent batches on Postgres."""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.common.db import UTCDateTime, create_engine
from services.common.migrations import downgrade, drop_database, ensure_database, upgrade
from services.rewards.leaderboards import service
from services.rewards.leaderboards.service import COUNTS, POINTS, Earned
from tests.pg import pg_url
from tests.rewards.conftest import Api
from tests.system import System, member

Board = tuple[uuid.UUID, str, date]


async def add(system: System, earned: list[Earned]) -> None:
    db = system.state("rewards").db
    async with db.session() as session:
        await service.add_points(session, earned)
        await session.commit()


async def drop(system: System, member_id: uuid.UUID, communities: list[uuid.UUID]) -> None:
    db = system.state("rewards").db
    async with db.session() as session:
        await service.drop_member(session, member_id, communities)
        await session.commit()


async def snapshot(system: System) -> tuple[list[Any], Counter[tuple[Any, ...]]]:
    """Every period_points row, and the histogram's non-zero counts."""
    db = system.state("rewards").db
    async with db.session() as session:
        rows = list((await session.execute(sa.select(POINTS))).all())
        counts = await session.execute(sa.select(COUNTS).where(COUNTS.c.members != 0))
        histogram = Counter({(r.community_id, r.period, r.period_start, r.points): r.members for r in counts})
    return rows, histogram


async def assert_consistent(system: System) -> None:
    rows, histogram = await snapshot(system)
    expected = Counter((r.community_id, r.period, r.period_start, r.points) for r in rows if r.points > 0)
    assert histogram == expected
    boards: dict[Board, list[Any]] = {}
    for r in rows:
        boards.setdefault((r.community_id, r.period, r.period_start), []).append(r)
    db = system.state("rewards").db
    for (community, period, start), members in boards.items():
        ranked = sorted((r for r in members if r.points > 0), key=lambda r: (-r.points, r.reached_at, r.member_id))
        brute = {r.member_id: rank for rank, r in enumerate(ranked, 1)}
        for r in members:
            mine = await service.rank_of(db, community, period, start, r.member_id)  # type: ignore[arg-type]
            if r.member_id in brute:
                assert mine is not None
                assert (mine.rank, mine.points) == (brute[r.member_id], r.points)
            else:
                assert mine is None
        top = await service.top(db, community, period, start, 7)  # type: ignore[arg-type]
        assert [(t.rank, t.member_id, t.points) for t in top] == [
            (i, r.member_id, r.points) for i, r in enumerate(ranked[:7], 1)
        ]


def random_batch(
    rng: random.Random, communities: list[uuid.UUID], members: list[uuid.UUID], days: list[date], size: int
) -> list[Earned]:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        Earned(
            rng.choice(communities),
            rng.choice(members),
            rng.choice(days),
            rng.choice((0, 5, 5, 10, 20)),  # few values: many ties on points
            base + timedelta(minutes=rng.randrange(4)),  # few instants: ties on reached_at too
        )
        for _ in range(size)
    ]


async def test_histogram_ranks_equal_brute_force_ranks(system: System) -> None:
    rng = random.Random(20261121)
    communities = [uuid.uuid4(), uuid.uuid4()]
    members = [uuid.uuid4() for _ in range(40)]
    today = date(2026, 11, 18)
    days = [today, today - timedelta(days=1), today - timedelta(days=9), today - timedelta(days=40)]
    for size in (1, 25, 60, 120):
        await add(system, random_batch(rng, communities, members, days, size))
        await assert_consistent(system)
    for gone in rng.sample(members, 6):
        await drop(system, gone, communities)
    await drop(system, uuid.uuid4(), communities)  # never earned: nothing moves
    await assert_consistent(system)
    # Erased members who earn again come back; zero-point awards rank nobody.
    await add(system, random_batch(rng, communities, members, days, 80))
    await add(system, [Earned(communities[0], uuid.uuid4(), today, 0, datetime.now(UTC))])
    await assert_consistent(system)


async def test_me_through_the_api_uses_the_histogram(system: System, api: Api) -> None:
    community = uuid.uuid4()
    today = datetime.now(UTC).astimezone().date()
    at = datetime.now(UTC) - timedelta(hours=1)
    high, tie_early, tie_late, low = (uuid.uuid4() for _ in range(4))
    await add(
        system,
        [
            Earned(community, high, today, 50, at),
            Earned(community, tie_early, today, 30, at - timedelta(minutes=2)),
            Earned(community, tie_late, today, 10, at),
            Earned(community, tie_late, today, 20, at - timedelta(minutes=1)),
            Earned(community, low, today, 5, at),
        ],
    )
    expected = {high: 1, tie_early: 2, tie_late: 3, low: 4}
    for who, rank in expected.items():
        async with api(member(who)) as client:
            response = await client.get("/v1/leaderboards", params={"community_id": str(community), "period": "all"})
        assert response.status_code == 200, response.text
        assert response.json()["me"]["rank"] == rank


async def test_concurrent_awards_and_erasures_keep_the_histogram_exact(system: System) -> None:
    rng = random.Random(7)
    communities = [uuid.uuid4()]
    members = [uuid.uuid4() for _ in range(30)]
    today = date(2026, 11, 18)
    days = [today, today - timedelta(days=1)]
    await add(system, random_batch(rng, communities, members, days, 60))
    # Overlapping members and values in every batch: row locks order the moves, and the
    # sorted histogram upsert keeps the batches from deadlocking on each other.
    batches = [random_batch(rng, communities, members, days, 40) for _ in range(12)]
    erasures = rng.sample(members, 4)
    await asyncio.gather(
        *(add(system, batch) for batch in batches),
        *(drop(system, gone, communities) for gone in erasures),
    )
    await assert_consistent(system)


async def test_migration_backfills_the_histogram() -> None:
    """0004 counts the existing period_points rows (points > 0) per board and value."""
    url = pg_url(f"qunyun_test_histogram_{secrets.token_hex(4)}")
    await ensure_database(url)
    engine = create_engine(url, pool=False)
    community = uuid.uuid4()
    try:
        await upgrade("rewards", url, "feddb68e15ed")
        now = datetime.now(UTC)
        insert = sa.text(
            "INSERT INTO period_points (community_id, period, period_start, member_id, points, reached_at) "
            "VALUES (:c, :p, :s, :m, :points, :now)"
        ).bindparams(
            sa.bindparam("c", type_=sa.Uuid()),
            sa.bindparam("m", type_=sa.Uuid()),
            sa.bindparam("s", type_=sa.Date()),
            sa.bindparam("now", type_=UTCDateTime()),
        )
        rows = [("all", 10), ("all", 10), ("all", 30), ("all", 0), ("week", 10)]
        async with engine.begin() as connection:
            for period, points in rows:
                start = date(1970, 1, 1) if period == "all" else date(2026, 11, 16)
                params = {"c": community, "p": period, "s": start, "m": uuid.uuid4(), "points": points, "now": now}
                await connection.execute(insert, params)
        await upgrade("rewards", url)
        async with engine.connect() as connection:
            counts = await connection.execute(sa.text("SELECT period, points, members FROM period_points_counts"))
            assert sorted(tuple(r) for r in counts) == [("all", 10, 2), ("all", 30, 1), ("week", 10, 1)]
        await downgrade("rewards", url, "feddb68e15ed")
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT count(*) FROM period_points"))).scalar() == 5
    finally:
        await engine.dispose()
        await drop_database(url)


async def test_the_statement_files_awards_under_the_periods_python_computes(system: System) -> None:
    """`ADD_POINTS` spreads awards over periods in SQL; reads (and the old Python path) name
    periods with `service.period_start`: the two must agree, boundaries included."""
    community = uuid.uuid4()
    days = [
        date(2026, 11, 29),  # a Sunday: its ISO week began on Monday the 23rd
        date(2026, 11, 30),  # a Monday, and a month's last day
        date(2026, 12, 1),  # a month's first day, mid-week
        date(2027, 1, 1),  # a Friday whose ISO week began in the previous year
        date(2028, 2, 29),  # a leap day
    ]
    at = datetime(2026, 11, 29, tzinfo=UTC)
    earned = [Earned(community, uuid.uuid4(), day, 5, at) for day in days]
    await add(system, earned)
    rows, _ = await snapshot(system)
    filed = {(r.member_id, r.period): r.period_start for r in rows if r.community_id == community}
    expected = {
        (e.member_id, period): service.period_start(period, e.local_date)
        for e in earned
        for period in ("week", "month", "all")
    }
    assert filed == expected
    assert filed[(earned[0].member_id, "week")] == date(2026, 11, 23)
    assert filed[(earned[3].member_id, "week")] == date(2026, 12, 28)
    await assert_consistent(system)
