"""Recording activity: the hot path. Set-based SQL, a fixed number of statements per batch.

A batch of N events costs one query to resolve members, one for communities, one
multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING for the events, one executemany
for `last_active_at`, one upsert per rollup table and the outbox inserts, whatever N is.

Rows are written in key order (events by id, members by id, rollups by key), so
concurrent batches take row locks in the same order and cannot deadlock each other.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import UTCDateTime, utcnow
from services.common.events import EventDraft, emit_many
from services.common.problems import ProblemError, Unprocessable
from services.members.activity.models import Activity, ActivityDaily, ActivityHourly
from services.members.activity.schemas import ActivityCreate
from services.members.communities.service import CommunityNotFound, community_zones
from services.members.db import table_of
from services.members.events import ACTIVITY_RECORDED, rfc3339
from services.members.profiles.models import Member
from services.members.profiles.service import MemberNotFound, resolve_member_ids
from services.members.sql import insert_for

activities = table_of(Activity)
activity_daily = table_of(ActivityDaily)
activity_hourly = table_of(ActivityHourly)
members = table_of(Member)

_one = TypeAdapter(ActivityCreate)
_many = TypeAdapter(list[ActivityCreate])


class MissingMemberReference(Unprocessable):
    slug, title = "validation-error", "Invalid request"

    def __init__(self) -> None:
        super().__init__(
            "Give member_id or external_id.",
            errors=[{"loc": ["member_id"], "msg": "give member_id or external_id"}],
        )


@dataclass(frozen=True)
class Recorded:
    id: uuid.UUID
    duplicate: bool


# One outcome per input position: recorded (new or duplicate) or the problem that refused it.
Outcome = Recorded | ProblemError


def validate_batch(raw: list[dict[str, Any]]) -> list[ActivityCreate | ProblemError]:
    """Each item validated on its own; a bad item becomes a 422 problem at its index."""
    try:
        return list(_many.validate_python(raw))
    except ValidationError:
        pass  # slow path only when something is wrong: find which items
    parsed: list[ActivityCreate | ProblemError] = []
    for item in raw:
        try:
            parsed.append(_one.validate_python(item))
        except ValidationError as exc:
            errors = [{"loc": [p for p in e["loc"] if isinstance(p, str | int)], "msg": e["msg"]} for e in exc.errors()]
            parsed.append(Unprocessable("The event has invalid fields.", errors=errors))
    return parsed


async def record_activities(
    session: AsyncSession, items: list[ActivityCreate | ProblemError], *, now: datetime | None = None
) -> list[Outcome]:
    """Record the valid items once each; return one outcome per item, in input order."""
    now = now or utcnow()
    outcomes: list[Outcome | None] = [item if isinstance(item, ProblemError) else None for item in items]
    valid = [(i, item) for i, item in enumerate(items) if isinstance(item, ActivityCreate)]

    found_ids, by_external = await resolve_member_ids(
        session,
        {item.member_id for _, item in valid if item.member_id is not None},
        {item.external_id for _, item in valid if item.external_id is not None},
    )
    zones = await community_zones(session, {item.community_id for _, item in valid})

    rows: dict[uuid.UUID, dict[str, Any]] = {}  # by event id: a repeated id within the batch is a duplicate
    position: dict[uuid.UUID, int] = {}
    for index, item in valid:
        member_id = item.member_id if item.member_id in found_ids else by_external.get(item.external_id or "")
        zone = zones.get(item.community_id)
        if item.member_id is None and item.external_id is None:
            outcomes[index] = MissingMemberReference()
        elif member_id is None:
            outcomes[index] = MemberNotFound("No such member.")
        elif zone is None:
            outcomes[index] = CommunityNotFound("No such community.")
        else:
            event_id = item.id or uuid.uuid4()
            if event_id in rows:
                outcomes[index] = Recorded(event_id, duplicate=True)
                continue
            occurred_at = item.occurred_at or now
            local = occurred_at.astimezone(_zone(zone))
            rows[event_id] = {
                "id": event_id,
                "community_id": item.community_id,
                "member_id": member_id,
                "type": item.type,
                "occurred_at": occurred_at,
                "local_date": local.date(),
                "properties": item.properties,
                "recorded_at": now,
                # not columns: carried for rollups and the event
                "_hour": local.hour,
                "_zone": zone,
            }
            position[event_id] = index

    new_ids = await _insert_new(session, [rows[k] for k in sorted(rows, key=_uuid_order)])
    for event_id, index in position.items():
        outcomes[index] = Recorded(event_id, duplicate=event_id not in new_ids)
    fresh = [rows[k] for k in sorted(new_ids, key=_uuid_order)]
    if fresh:
        await _touch_members(session, fresh)
        await emit_many(session, [_recorded_event(row) for row in fresh])
        await _roll_up(session, fresh)
    return [o for o in outcomes if o is not None]


def _uuid_order(value: uuid.UUID) -> int:
    """Sort key matching Postgres' uuid order (bytes, big-endian), cheaper than UUID.__lt__."""
    return value.int


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # ZoneInfo caches instances per key


_ACTIVITY_COLUMNS = (
    "id",
    "community_id",
    "member_id",
    "type",
    "occurred_at",
    "local_date",
    "properties",
    "recorded_at",
)


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Multi-row INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id: the ids that were new."""
    if not rows:
        return set()
    statement = (
        insert_for(session, activities)
        .on_conflict_do_nothing(index_elements=[activities.c.id])
        .returning(activities.c.id)
    )
    # Executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row INSERTs built
    # from one cached compilation (a literal `.values([...])` would be compiled on every call).
    values = [{c: row[c] for c in _ACTIVITY_COLUMNS} for row in rows]
    return set((await session.execute(statement, values)).scalars())


async def _touch_members(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """`last_active_at` moves forward only (a late, older event never moves it back)."""
    latest: dict[uuid.UUID, datetime] = {}
    for row in rows:
        member_id = row["member_id"]
        if member_id not in latest or row["occurred_at"] > latest[member_id]:
            latest[member_id] = row["occurred_at"]
    ts = sa.bindparam("ts", type_=UTCDateTime())
    statement = (
        members.update()
        .where(
            members.c.id == sa.bindparam("mid"),
            sa.or_(members.c.last_active_at.is_(None), members.c.last_active_at < ts),
        )
        .values(last_active_at=ts)
    )
    params = [{"mid": member_id, "ts": latest[member_id]} for member_id in sorted(latest, key=_uuid_order)]
    await session.execute(statement, params)


async def _roll_up(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add the new events to the daily and hourly rollups (upserts, aggregated per key first)."""
    daily: Counter[tuple[uuid.UUID, date, uuid.UUID]] = Counter()
    hourly: Counter[tuple[uuid.UUID, date, int]] = Counter()
    for row in rows:
        daily[(row["community_id"], row["local_date"], row["member_id"])] += 1
        hourly[(row["community_id"], row["local_date"], row["_hour"])] += 1
    daily_insert = insert_for(session, activity_daily)
    await session.execute(
        daily_insert.on_conflict_do_update(
            index_elements=[activity_daily.c.community_id, activity_daily.c.local_date, activity_daily.c.member_id],
            set_={"events": activity_daily.c.events + daily_insert.excluded.events},
        ),
        [
            {"community_id": c, "local_date": d, "member_id": m, "events": n}
            for (c, d, m), n in sorted(daily.items(), key=lambda kv: (kv[0][0].int, kv[0][1], kv[0][2].int))
        ],
    )
    hourly_insert = insert_for(session, activity_hourly)
    await session.execute(
        hourly_insert.on_conflict_do_update(
            index_elements=[activity_hourly.c.community_id, activity_hourly.c.local_date, activity_hourly.c.hour],
            set_={"events": activity_hourly.c.events + hourly_insert.excluded.events},
        ),
        [
            {"community_id": c, "local_date": d, "hour": h, "weekday": d.weekday(), "events": n}
            for (c, d, h), n in sorted(hourly.items(), key=lambda kv: (kv[0][0].int, kv[0][1], kv[0][2]))
        ],
    )


def _recorded_event(row: dict[str, Any]) -> EventDraft:
    return EventDraft(
        ACTIVITY_RECORDED,
        {
            "activity_id": str(row["id"]),
            "member_id": str(row["member_id"]),
            "community_id": str(row["community_id"]),
            "type": row["type"],
            "occurred_at": rfc3339(row["occurred_at"]),
            "local_date": row["local_date"].isoformat(),
            "timezone": row["_zone"],
            "properties": row["properties"],
        },
        occurred_at=row["occurred_at"],
    )
