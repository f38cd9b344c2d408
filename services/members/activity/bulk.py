"""The writes of the ingest hot path: two statements for a whole batch, columns as arrays.

`unnest($1::uuid[], ...)` turns the batch's columns back into rows: one round trip and one
parse whatever the batch size, and asyncpg encodes each array in one go (no per-row bind
processing). The first statement inserts the activities whose id is new; the second, from
exactly those, moves each member's last activity forward and counts the rollups (GROUP BY
in the statement).

Lock order, which keeps concurrent batches from deadlocking: activities are inserted in
array order, which the caller sorts by id, before any shared row is locked; each shared
table (last activity, daily and hourly rollups) is written from a sorted GROUP BY, so in
key order; and the sub-statements of one statement text always run in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events.outbox import event_json

INSERT_ACTIVITIES = """
INSERT INTO activities (id, community_id, member_id, type, occurred_at, local_date, properties, recorded_at)
SELECT a.id, a.community_id, a.member_id, a.type, a.occurred_at, a.local_date, a.properties, $8
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[], $6::date[], $7::json[])
    AS a(id, community_id, member_id, type, occurred_at, local_date, properties)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# The new events' shared rows, from their columns sent once. (Not in the statement above,
# joined to its RETURNING: a prepared statement's generic plan expects 10 rows from each
# `unnest` and joins them with a nested loop, a million comparisons for 1000 events.)
ADD_SHARED = """
WITH fresh AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::date[], $5::int[])
        AS e(community_id, member_id, occurred_at, local_date, hour)
), touched AS (
    -- Each member's latest new event, moved forward only (an older batch never moves it
    -- back); ON CONFLICT makes a member's first activity safe against a concurrent first one.
    INSERT INTO member_activity (member_id, last_active_at)
    SELECT member_id, max(occurred_at) FROM fresh
    GROUP BY member_id
    ORDER BY member_id
    ON CONFLICT (member_id) DO UPDATE SET last_active_at = excluded.last_active_at
    WHERE member_activity.last_active_at < excluded.last_active_at
), daily AS (
    INSERT INTO activity_daily (community_id, local_date, member_id, events)
    SELECT community_id, local_date, member_id, count(*) FROM fresh
    GROUP BY community_id, local_date, member_id
    ORDER BY community_id, local_date, member_id
    ON CONFLICT (community_id, local_date, member_id) DO UPDATE SET events = activity_daily.events + excluded.events
)
-- weekday: 0 = Monday, as Python's date.weekday().
INSERT INTO activity_hourly (community_id, local_date, hour, weekday, events)
SELECT community_id, local_date, hour, extract(isodow FROM local_date)::int - 1, count(*) FROM fresh
GROUP BY community_id, local_date, hour
ORDER BY community_id, local_date, hour
ON CONFLICT (community_id, local_date, hour) DO UPDATE SET events = activity_hourly.events + excluded.events
"""


class ActivityColumns(NamedTuple):
    """A batch's events as columns, one position per event, in id order (the lock order)."""

    positions: Sequence[int]  # each event's index in the request's list
    ids: Sequence[uuid.UUID]
    community_ids: Sequence[uuid.UUID]
    member_ids: Sequence[uuid.UUID]
    types: Sequence[str]
    occurred: Sequence[datetime]
    local_dates: Sequence[date]
    hours: Sequence[int]  # local hour of the day
    zones: Sequence[str]  # the community's time zone
    properties: Sequence[dict[str, Any]]

    def only(self, kept: Sequence[int]) -> ActivityColumns:
        """These columns at the `kept` positions only."""
        columns: list[Any] = [[column[i] for i in kept] for column in self]
        return ActivityColumns(*columns)


async def insert_activities(session: AsyncSession, batch: ActivityColumns, now: datetime) -> set[uuid.UUID]:
    """Insert the events whose id is new; return those ids (a known id is a duplicate)."""
    if not batch.ids:
        return set()
    connection = await session.connection()
    result = await connection.exec_driver_sql(
        INSERT_ACTIVITIES,
        (
            batch.ids,
            batch.community_ids,
            batch.member_ids,
            batch.types,
            batch.occurred,
            batch.local_dates,
            [event_json(p) for p in batch.properties],
            now,
        ),
    )
    return set(result.scalars())


async def add_shared(session: AsyncSession, fresh: ActivityColumns) -> None:
    """Move each member's last activity forward and count the new events into the rollups."""
    if not fresh.ids:
        return
    connection = await session.connection()
    await connection.exec_driver_sql(
        ADD_SHARED, (fresh.community_ids, fresh.member_ids, fresh.occurred, fresh.local_dates, fresh.hours)
    )
