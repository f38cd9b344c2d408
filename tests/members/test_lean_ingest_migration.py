"""The lean-ingest migration carries each member's `last_active_at` into `member_activity`
and back on downgrade."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.common.migrations import downgrade, drop_database, ensure_database, upgrade
from tests.pg import pg_url

BEFORE = "313868a3e51e"  # kit jobs: last_active_at still on members


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    url = pg_url(f"qunyun_lean_{secrets.token_hex(4)}_members")
    await ensure_database(url)
    yield url
    await drop_database(url)


async def run(url: str, sql: str, **params: object) -> list[sa.Row[tuple[object, ...]]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_last_active_at_moves_to_member_activity_and_back(url: str) -> None:
    await upgrade("members", url, BEFORE)
    active, idle = uuid.uuid4(), uuid.uuid4()
    seen = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    now = datetime(2026, 10, 1, tzinfo=UTC)
    for member_id, last in ((active, seen), (idle, None)):
        await run(
            url,
            "INSERT INTO members (id, display_name, tags, attributes, consent_marketing, joined_at, last_active_at,"
            " created_at, updated_at) VALUES (:id, 'm', '[]', '{}', false, :now, :last, :now, :now)",
            id=member_id,
            now=now,
            last=last,
        )

    await upgrade("members", url)
    assert await run(url, "SELECT member_id, last_active_at FROM member_activity") == [(active, seen)]
    columns = await run(url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'members'")
    assert ("last_active_at",) not in columns

    # An undelivered batch row holds the downgrade back (the older relay could not read it).
    batch_id = uuid.uuid4()
    await run(
        url,
        "INSERT INTO outbox (id, type, occurred_at, data, batch_size) VALUES (:id, 'activity.recorded', :now, '[]', 0)",
        id=batch_id,
        now=now,
    )
    await run(
        url,
        "INSERT INTO outbox_pending (subscriber, event_id, attempts, next_attempt_at) VALUES ('rewards', :id, 0, :now)",
        id=batch_id,
        now=now,
    )
    with pytest.raises(Exception, match="undelivered batch outbox rows"):
        await downgrade("members", url, BEFORE)
    await run(url, "DELETE FROM outbox_pending")

    await downgrade("members", url, BEFORE)
    rows = await run(url, "SELECT id, last_active_at FROM members ORDER BY last_active_at NULLS LAST")
    assert rows == [(active, seen), (idle, None)]
