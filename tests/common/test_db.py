"""Engines: asyncpg only, pooled as configured; UTC timestamps; no bound values in SQL errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from services.common.db import Database, UTCDateTime, create_engine
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
