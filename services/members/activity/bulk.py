"""Writes of the ingest hot path: whole columns as arrays, one statement per table.

`INSERT ... SELECT * FROM unnest($1::uuid[], ...)` costs one round trip and one parse
whatever the batch size, and asyncpg encodes each array in one go (no per-row bind
processing). Rows come out of `unnest` in array order, which callers sort by key, so
locks are taken in key order (see `service`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events.outbox import event_json

if TYPE_CHECKING:
    from services.members.activity.service import DailyKey, HourlyKey, NewActivity

INSERT_ACTIVITIES = """
INSERT INTO activities (id, community_id, member_id, type, occurred_at, local_date, properties, recorded_at)
SELECT a.id, a.community_id, a.member_id, a.type, a.occurred_at, a.local_date, a.properties, $8
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[], $6::date[], $7::json[])
    AS a(id, community_id, member_id, type, occurred_at, local_date, properties)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# An UPDATE ... FROM locks rows in whatever order its join plan visits them, and the plan
# changes with the batch size: two batches could then lock the same members in opposite
# orders and deadlock. The CTE locks them in id order first (under ORDER BY), the UPDATE
# then only touches rows this transaction already holds. NO KEY UPDATE is the lock the
# UPDATE itself takes: FOR UPDATE would also block the KEY SHARE locks that inserting
# activities (foreign key to members) takes, and deadlock against concurrent inserts.
TOUCH_MEMBERS = """
WITH latest AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) AS l(id, at)
), locked AS MATERIALIZED (
    SELECT m.id, latest.at FROM members AS m JOIN latest ON latest.id = m.id
    WHERE m.last_active_at IS NULL OR m.last_active_at < latest.at
    ORDER BY m.id
    FOR NO KEY UPDATE OF m
)
UPDATE members AS m SET last_active_at = locked.at
FROM locked
WHERE m.id = locked.id AND (m.last_active_at IS NULL OR m.last_active_at < locked.at)
"""

ADD_DAILY = """
INSERT INTO activity_daily (community_id, local_date, member_id, events)
SELECT * FROM unnest($1::uuid[], $2::date[], $3::uuid[], $4::int[])
ON CONFLICT (community_id, local_date, member_id) DO UPDATE SET events = activity_daily.events + excluded.events
"""

ADD_HOURLY = """
INSERT INTO activity_hourly (community_id, local_date, hour, weekday, events)
SELECT * FROM unnest($1::uuid[], $2::date[], $3::int[], $4::int[], $5::int[])
ON CONFLICT (community_id, local_date, hour) DO UPDATE SET events = activity_hourly.events + excluded.events
"""


async def insert_activities(session: AsyncSession, events: Sequence[NewActivity], now: datetime) -> set[uuid.UUID]:
    """Insert the events whose id is new; return those ids (a known id is a duplicate)."""
    if not events:
        return set()
    connection = await session.connection()
    result = await connection.exec_driver_sql(
        INSERT_ACTIVITIES,
        (
            [e.id for e in events],
            [e.community_id for e in events],
            [e.member_id for e in events],
            [e.type for e in events],
            [e.occurred_at for e in events],
            [e.local_date for e in events],
            [event_json(e.properties) for e in events],
            now,
        ),
    )
    return set(result.scalars())


async def touch_members(session: AsyncSession, latest: Sequence[tuple[uuid.UUID, datetime]]) -> None:
    """Move each member's `last_active_at` forward to its latest event (never back)."""
    if not latest:
        return
    connection = await session.connection()
    await connection.exec_driver_sql(TOUCH_MEMBERS, ([m for m, _ in latest], [at for _, at in latest]))


async def add_to_rollups(
    session: AsyncSession, daily: Sequence[tuple[DailyKey, int]], hourly: Sequence[tuple[HourlyKey, int]]
) -> None:
    """Add per-key counts to the daily and hourly rollups (rows in the given key order)."""
    connection = await session.connection()
    if daily:
        await connection.exec_driver_sql(
            ADD_DAILY,
            (
                [c for (c, _, _), _ in daily],
                [d for (_, d, _), _ in daily],
                [m for (_, _, m), _ in daily],
                [n for _, n in daily],
            ),
        )
    if hourly:
        await connection.exec_driver_sql(
            ADD_HOURLY,
            (
                [c for (c, _, _), _ in hourly],
                [d for (_, d, _), _ in hourly],
                [h for (_, _, h), _ in hourly],
                [d.weekday() for (_, d, _), _ in hourly],
                [n for _, n in hourly],
            ),
        )
