"""Writes of the ingest hot path: whole columns as arrays, one statement per table.

`INSERT ... SELECT ... FROM unnest($1::uuid[], ...)` costs one round trip and one parse
whatever the batch size, and asyncpg encodes each array in one go (no per-row bind
processing). Activities come out of `unnest` in array order, which the caller sorts by
id; the shared rows (last activity, rollups) are grouped and ordered by key in the
statement. Either way locks are taken in key order (see `service`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events.outbox import event_json

if TYPE_CHECKING:
    from services.members.activity.service import NewActivity

INSERT_ACTIVITIES = """
INSERT INTO activities (id, community_id, member_id, type, occurred_at, local_date, properties, recorded_at)
SELECT a.id, a.community_id, a.member_id, a.type, a.occurred_at, a.local_date, a.properties, $8
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[], $6::date[], $7::json[])
    AS a(id, community_id, member_id, type, occurred_at, local_date, properties)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# Each member's latest event of the batch, moved forward only (an older batch never moves it
# back). Rows are inserted, hence locked, in member id order (ORDER BY), so concurrent
# batches wait for each other rather than deadlock; ON CONFLICT makes the first activity of
# a member safe against a concurrent first one.
TOUCH_MEMBERS = """
INSERT INTO member_activity (member_id, last_active_at)
SELECT member_id, max(at) FROM unnest($1::uuid[], $2::timestamptz[]) AS l(member_id, at)
GROUP BY member_id
ORDER BY member_id
ON CONFLICT (member_id) DO UPDATE SET last_active_at = excluded.last_active_at
WHERE member_activity.last_active_at < excluded.last_active_at
"""

# The rollups count the batch's new events per key in the statement, rows in key order.
ADD_DAILY = """
INSERT INTO activity_daily (community_id, local_date, member_id, events)
SELECT community_id, local_date, member_id, count(*)
FROM unnest($1::uuid[], $2::date[], $3::uuid[]) AS e(community_id, local_date, member_id)
GROUP BY community_id, local_date, member_id
ORDER BY community_id, local_date, member_id
ON CONFLICT (community_id, local_date, member_id) DO UPDATE SET events = activity_daily.events + excluded.events
"""

# weekday: 0 = Monday, as Python's date.weekday().
ADD_HOURLY = """
INSERT INTO activity_hourly (community_id, local_date, hour, weekday, events)
SELECT community_id, local_date, hour, extract(isodow FROM local_date)::int - 1, count(*)
FROM unnest($1::uuid[], $2::date[], $3::int[]) AS e(community_id, local_date, hour)
GROUP BY community_id, local_date, hour
ORDER BY community_id, local_date, hour
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


async def touch_members(session: AsyncSession, events: Sequence[NewActivity]) -> None:
    """Move each member's `last_active_at` forward to their latest event (never back)."""
    if not events:
        return
    connection = await session.connection()
    await connection.exec_driver_sql(TOUCH_MEMBERS, ([e.member_id for e in events], [e.occurred_at for e in events]))


async def add_to_rollups(session: AsyncSession, events: Sequence[NewActivity]) -> None:
    """Count the new events into the daily and hourly rollups."""
    if not events:
        return
    connection = await session.connection()
    communities = [e.community_id for e in events]
    days = [e.local_date for e in events]
    await connection.exec_driver_sql(ADD_DAILY, (communities, days, [e.member_id for e in events]))
    await connection.exec_driver_sql(ADD_HOURLY, (communities, days, [e.hour for e in events]))
