"""Engines: asyncpg only, pooled as configured; UTC timestamps; no bound values in SQL errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import (
    Database,
    PreparedAtomic,
    PreparedRead,
    SessionDep,
    UTCDateTime,
    create_engine,
    is_plain_read,
)
from services.common.problems import Conflict, database_unavailable, install_problem_handlers
from tests.common.kit import KitDatabases, KitSystem


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///qunyun.db", "postgresql://postgres@127.0.0.1/qunyun", "mysql+aiomysql://x@h/db"]
)
def test_engines_are_asyncpg_only(url: str) -> None:
    with pytest.raises(ValueError, match="asyncpg"):
        create_engine(url)


async def test_postgres_engines_are_pooled_as_configured(kit_dbs: KitDatabases) -> None:
    settings = kit_dbs.settings(db_pool_size=7, db_max_overflow=3, db_pool_timeout_seconds=4)
    db = Database(kit_dbs.urls["feedback"], settings)
    try:
        await db.ping()
        pool = db.engine.pool
        assert pool.size() == 7  # type: ignore[attr-defined]
        assert pool._max_overflow == 3  # type: ignore[attr-defined]
        assert pool._timeout == 4  # type: ignore[attr-defined]
        assert pool._pre_ping is False  # no round trip per checkout; stale connections recycle
        assert pool._recycle == 1800
        assert db.engine.sync_engine.hide_parameters is True
    finally:
        await db.dispose()


async def test_sql_errors_do_not_carry_the_values(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    event_id = uuid.uuid4()
    row = {"id": event_id, "type": "t", "occurred_at": datetime.now(UTC), "data": {"email": "carol@example.com"}}
    async with kit.db().session() as session:
        await session.execute(outbox.insert(), [row])
        with pytest.raises(IntegrityError) as caught:
            await session.execute(outbox.insert(), [row])
    assert "carol@example.com" not in str(caught.value)
    assert str(event_id) not in str(caught.value)


async def test_utc_datetimes_round_trip_and_naive_ones_are_refused(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 21, 16, 0, 0, 123456, tzinfo=shanghai)
    async with kit.db().session() as session:
        await session.execute(outbox.insert().values(id=uuid.uuid4(), type="t", occurred_at=local, data={}))
        stored = await session.scalar(sa.select(outbox.c.occurred_at))
        with pytest.raises(StatementError):
            await session.execute(
                outbox.insert().values(id=uuid.uuid4(), type="t", occurred_at=datetime(2026, 1, 1), data={})
            )
    assert stored == local
    assert stored is not None
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored.hour == 8
    assert UTCDateTime().python_type is datetime


# --- read-first sessions (GET and HEAD): no BEGIN/COMMIT unless the request writes ---------

# Inside a transaction `now()` is the transaction's start, so a statement sent 20 ms after an
# earlier one is at least that far past it; a statement that runs on its own has both within
# microseconds (the extended protocol's messages).
IN_TRANSACTION = sa.text("SELECT statement_timestamp() - now() > interval '10 milliseconds'")


async def _in_transaction(session: AsyncSession) -> bool:
    await asyncio.sleep(0.02)
    return bool(await session.scalar(IN_TRANSACTION))


async def test_a_read_first_session_that_only_reads_opens_no_transaction(kit: KitSystem) -> None:
    async with kit.db().read_session() as session:
        await session.execute(sa.select(sa.literal(1)))
        assert not await _in_transaction(session)
        await session.commit()
    async with kit.db().session() as session:  # an ordinary session still has its transaction
        await session.execute(sa.select(sa.literal(1)))
        assert await _in_transaction(session)


async def test_a_read_first_session_writes_in_one_transaction_that_rolls_back(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    row = {"id": uuid.uuid4(), "type": "t", "occurred_at": datetime.now(UTC), "data": {}}
    async with kit.db().read_session() as session:
        await session.execute(sa.select(sa.literal(1)))
        await session.execute(outbox.insert(), [row])
        assert await _in_transaction(session)  # the write began it; what follows joins it
        await session.rollback()
    assert await kit.rows(outbox) == []


async def test_a_read_first_session_locks_rows_inside_a_transaction(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    async with kit.db().read_session() as session:
        await session.execute(sa.select(outbox.c.id).with_for_update())
        assert await _in_transaction(session)
        await session.commit()


async def test_connections_go_back_to_the_pool_transactional(kit_dbs: KitDatabases) -> None:
    db = Database(kit_dbs.urls["feedback"], kit_dbs.settings(db_pool_size=1, db_max_overflow=0))
    try:
        for _ in range(2):
            async with db.read_session() as session:
                await session.execute(sa.select(sa.literal(1)))
                await session.commit()
            async with db.session() as session:  # the same connection, taken back from the pool
                await session.execute(sa.select(sa.literal(1)))
                assert await _in_transaction(session)
                await session.commit()
    finally:
        await db.dispose()


async def test_get_requests_read_outside_a_transaction_and_their_writes_still_roll_back(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    app = FastAPI()
    app.state.db = kit.db()
    install_problem_handlers(app)

    @app.api_route("/probe", methods=["GET", "POST"])
    async def probe(session: SessionDep) -> dict[str, bool]:
        await session.execute(sa.select(sa.literal(1)))
        return {"in_transaction": await _in_transaction(session)}

    @app.get("/write-then-fail")
    async def write_then_fail(session: SessionDep) -> None:
        row = {"id": uuid.uuid4(), "type": "t", "occurred_at": datetime.now(UTC), "data": {}}
        await session.execute(outbox.insert(), [row])
        raise Conflict("Changed my mind.")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        assert (await client.get("/probe")).json() == {"in_transaction": False}
        assert (await client.post("/probe")).json() == {"in_transaction": True}
        assert (await client.get("/write-then-fail")).status_code == 409
    assert await kit.rows(outbox) == []


@pytest.mark.parametrize(
    ("statement", "plain"),
    [
        ("SELECT members.id FROM members WHERE members.id = $1", True),
        ("  select 1", True),
        ("SELECT id FROM lots WHERE member_id = $1 FOR UPDATE SKIP LOCKED", False),
        ("SELECT id FROM lots FOR NO KEY UPDATE", False),
        ("SELECT id FROM lots FOR SHARE", False),
        ("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", False),
        ("SELECT set_config('x.y', '1', true)", False),
        ("SELECT pg_notify('relay', $1)", False),
        ("SELECT txid_current()", False),
        ("SELECT * INTO copy FROM lots", False),
        ("WITH d AS (DELETE FROM lots RETURNING id) SELECT count(*) FROM d", False),
        ("WITH mine AS (SELECT points FROM period_points WHERE member_id = $1) SELECT points FROM mine", True),
        ("WITH u AS (UPDATE lots SET remaining = 0 RETURNING id) SELECT id FROM u", False),
        ("INSERT INTO lots (id) VALUES ($1)", False),
        ("UPDATE lots SET remaining = 0", False),
    ],
)
def test_only_plain_reads_run_outside_a_transaction(statement: str, plain: bool) -> None:
    assert is_plain_read(statement) is plain


async def test_prepared_reads_run_on_the_read_pool_and_fail_like_sqlalchemy(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    by_id = PreparedRead(sa.select(outbox.c.id, outbox.c.data).where(outbox.c.id == sa.bindparam("event_id")))
    event_id = uuid.uuid4()
    db = kit.db()
    assert await by_id.fetch_one(db, event_id=event_id) is None
    async with db.session() as session:
        row = {"id": event_id, "type": "t", "occurred_at": datetime.now(UTC), "data": {"n": 1}}
        await session.execute(outbox.insert(), [row])
        assert await by_id.fetch_one(db, event_id=event_id) is None  # committed data only
        await session.commit()
    found = await by_id.fetch_one(db, event_id=event_id)
    assert found is not None
    assert (found["id"], found["data"]) == (event_id, {"n": 1})  # JSON decoded, as SQLAlchemy does
    assert [r["id"] for r in await by_id.fetch_all(db, event_id=event_id)] == [event_id]
    broken = PreparedRead(sa.select(sa.cast(sa.bindparam("text", type_=sa.String), sa.Integer)))
    with pytest.raises(DBAPIError):
        await broken.fetch_one(db, text="not a number")
    assert await by_id.fetch_one(db, event_id=event_id) is not None  # the pool lives on
    with pytest.raises(ValueError, match="plain"):
        PreparedRead(sa.select(outbox.c.id).with_for_update())


async def test_an_atomic_statement_commits_on_its_own_and_leaves_its_connection_clean(kit: KitSystem) -> None:
    outbox = kit.producer.state.outbox.tables.outbox
    insert = PreparedAtomic(
        outbox.insert()
        .values(id=sa.bindparam("event_id"), type="t", occurred_at=sa.bindparam("at"), data=sa.bindparam("data"))
        .returning(outbox.c.id)
    )
    db = kit.db()
    event_id, now = uuid.uuid4(), datetime.now(UTC)
    row = await insert.fetch_one(db, event_id=event_id, at=now, data={"n": 1})
    assert row is not None
    assert row["id"] == event_id
    async with db.session() as session:  # committed: another connection sees it
        assert await session.scalar(sa.select(outbox.c.id).where(outbox.c.id == event_id)) == event_id
    with pytest.raises(DBAPIError):  # the same id again: the statement fails whole
        await insert.fetch_one(db, event_id=event_id, at=now, data={"n": 2})
    for _ in range(kit.settings.db_read_pool_size + 1):  # and no pooled connection is left in a failed transaction
        async with db.atomic() as connection:
            assert not connection.is_in_transaction()
    async with db.session() as session:
        data = await session.scalar(sa.select(outbox.c.data).where(outbox.c.id == event_id))
        assert data == {"n": 1}
    with pytest.raises(ValueError, match="PreparedRead"):
        PreparedAtomic(sa.select(outbox.c.id))


async def test_waiters_for_a_pooled_connection_are_served_in_arrival_order(kit_dbs: KitDatabases) -> None:
    """At saturation a read waits its turn: none is overtaken by later arrivals (asyncio's
    queue under asyncpg's pool let newcomers take the connection a woken waiter was owed)."""
    db = Database(kit_dbs.urls["feedback"], kit_dbs.settings(db_read_pool_size=2))
    arrived: list[int] = []
    served: list[int] = []

    async def read(i: int) -> None:
        await asyncio.sleep(i * 0.0003)  # arrivals keep coming while the pool is busy
        arrived.append(i)
        async with db.raw() as connection:
            served.append(i)
            await connection.fetchval("SELECT pg_sleep(0.001)")

    try:
        await asyncio.gather(*(read(i) for i in range(2)))  # both connections open
        arrived.clear()
        served.clear()
        await asyncio.gather(*(read(i) for i in range(80)))
    finally:
        await db.dispose()
    assert sorted(served) == list(range(80))
    assert served == arrived


async def test_an_unreachable_read_pool_is_a_database_outage(kit_dbs: KitDatabases) -> None:
    url = make_url(kit_dbs.urls["feedback"]).set(port=1).render_as_string(hide_password=False)
    db = Database(url, kit_dbs.settings())
    try:
        with pytest.raises(OperationalError) as caught:
            await PreparedRead(sa.select(sa.literal(1))).fetch_one(db)
        assert database_unavailable(caught.value)
    finally:
        await db.dispose()


def test_new_ids_are_random_version_4_ids_like_new_id() -> None:
    from services.common.db import new_ids

    ids = new_ids(2000)
    assert len(set(ids)) == 2000
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    # The 122 random bits vary: every hex digit outside the fixed ones takes many values.
    assert all(len({str(i)[pos] for i in ids}) > 8 for pos in (0, 9, 20, 35))
    assert new_ids(0) == []
