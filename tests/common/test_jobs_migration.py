"""The kit-jobs migration moves the relay's state out of its sentinels and back."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa

from services.common.db import create_engine
from services.common.migrations import downgrade, drop_database, ensure_database, upgrade
from tests.pg import pg_url

BEFORE = "42f190e213f8"
PARKED_AT = datetime(9999, 12, 31, tzinfo=UTC)  # the old sentinel
DUE = datetime(2026, 11, 21, 8, tzinfo=UTC)  # feedback's kit tables, before the job columns

ROWS = {
    # event: (next_attempt_at, last_error) in the old encoding
    "00000000-0000-0000-0000-000000000001": (PARKED_AT, "rejected: HTTP 500 boom"),
    "00000000-0000-0000-0000-000000000002": (DUE, "unavailable: ConnectError"),
    "00000000-0000-0000-0000-000000000003": (DUE, "rejected: HTTP 413"),
    "00000000-0000-0000-0000-000000000004": (DUE, None),
}


async def test_parked_sentinels_and_error_prefixes_become_status_and_failure_kind() -> None:
    url = pg_url(f"qunyun_test_jobs_{secrets.token_hex(4)}")
    await ensure_database(url)
    engine = create_engine(url, pool=False)
    try:
        await upgrade("feedback", url, BEFORE)
        async with engine.begin() as connection:
            for event_id, (due, error) in ROWS.items():
                await connection.execute(
                    sa.text(
                        "INSERT INTO outbox (id, type, occurred_at, data) VALUES (CAST(:id AS uuid), 't', now(), '{}');"
                    ),
                    {"id": event_id},
                )
                await connection.execute(
                    sa.text(
                        "INSERT INTO outbox_pending (subscriber, event_id, attempts, next_attempt_at, last_error)"
                        " VALUES ('members', CAST(:id AS uuid), 3, :due, :error)"
                    ),
                    {"id": event_id, "due": due, "error": error},
                )
        await upgrade("feedback", url)
        query = sa.text(
            "SELECT event_id::text, status, failure_kind, next_attempt_at < '9999-01-01' AS dated"
            " FROM outbox_pending ORDER BY event_id"
        )
        async with engine.connect() as connection:
            rows = [tuple(row) for row in await connection.execute(query)]
        ids = list(ROWS)
        assert rows == [
            (ids[0], "parked", "rejected", True),
            (ids[1], "pending", "unavailable", True),
            (ids[2], "pending", "rejected", True),
            (ids[3], "pending", None, True),
        ]
        await downgrade("feedback", url, BEFORE)
        async with engine.connect() as connection:
            parked = await connection.execute(
                sa.text("SELECT event_id::text FROM outbox_pending WHERE next_attempt_at >= '9999-12-31'")
            )
            assert parked.scalars().all() == [ids[0]]
    finally:
        await engine.dispose()
        await drop_database(url)
