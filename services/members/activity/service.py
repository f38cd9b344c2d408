"""Recording activity: the hot path, a fixed number of statements per batch whatever its size.

A batch of N events costs one query to resolve members and one for communities, then three
statements: the events whose id is new (INSERT ... ON CONFLICT (id) DO NOTHING RETURNING
id); ONE outbox row carrying all their `activity.recorded` events, and one pending row per
subscriber, not one per event and subscriber (the relay delivers each event on its own,
with its own id, so consumers and partner webhooks see no difference: see
`services.common.events.outbox`); then each member's `last_active_at` (the narrow
`member_activity`) and the rollups, counted per key in the statement. Each sends whole
columns as arrays and `unnest`s them (see `bulk`).

Lock order: the batch's own rows (events, outbox) first, then the rows that many batches
share (last activity, rollups), each in key order, so concurrent batches wait for each
other instead of deadlocking, and shared locks are held for the shortest time before the
request's commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.db import new_ids, utcnow
from services.common.events import BatchEvent, emit_batch
from services.common.problems import ProblemError, Unprocessable
from services.members.activity import bulk
from services.members.activity.schemas import ActivityCreate
from services.members.communities.service import CommunityNotFound, community_zones
from services.members.profiles.service import MemberNotFound, resolve_member_ids

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


@dataclass(slots=True)
class NewActivity:
    """One event about to be written, with what the rollups and `activity.recorded` need."""

    id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID
    type: str
    occurred_at: datetime
    local_date: date
    hour: int  # local hour, 0-23
    zone: str
    properties: dict[str, Any]


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
    # Not isinstance(item, ActivityCreate): pydantic models check through ABCMeta, slowly.
    valid = [(i, item) for i, item in enumerate(items) if not isinstance(item, ProblemError)]

    found_ids, by_external = await resolve_member_ids(
        session,
        {item.member_id for _, item in valid if item.member_id is not None},
        {item.external_id for _, item in valid if item.external_id is not None},
    )
    zones = await community_zones(session, {item.community_id for _, item in valid})
    # One ZoneInfo per community, not one lookup per event.
    tzinfos = {community_id: ZoneInfo(name) for community_id, name in zones.items()}

    pending: dict[uuid.UUID, NewActivity] = {}  # by event id: a repeated id within the batch is a duplicate
    position: dict[uuid.UUID, int] = {}
    for index, item in valid:
        member_id = item.member_id if item.member_id in found_ids else by_external.get(item.external_id or "")
        tz = tzinfos.get(item.community_id)
        if item.member_id is None and item.external_id is None:
            outcomes[index] = MissingMemberReference()
        elif member_id is None:
            outcomes[index] = MemberNotFound("No such member.")
        elif tz is None:
            outcomes[index] = CommunityNotFound("No such community.")
        else:
            event_id = item.id or uuid.uuid4()
            if event_id in pending:
                outcomes[index] = Recorded(event_id, duplicate=True)
                continue
            occurred_at = item.occurred_at or now
            local = occurred_at.astimezone(tz)
            pending[event_id] = NewActivity(
                event_id,
                item.community_id,
                member_id,
                item.type,
                occurred_at,
                local.date(),
                local.hour,
                zones[item.community_id],
                item.properties,
            )
            position[event_id] = index

    ordered = [pending[k] for k in sorted(pending, key=_uuid_order)]
    inserted = await bulk.insert_activities(session, ordered, now)
    for event_id, index in position.items():
        outcomes[index] = Recorded(event_id, duplicate=event_id not in inserted)
    fresh = [event for event in ordered if event.id in inserted]  # still in id order
    if fresh:
        # One outbox row for the whole batch: the relay delivers each event (see outbox).
        recorded = [
            _recorded_event(event, event_id) for event, event_id in zip(fresh, new_ids(len(fresh)), strict=True)
        ]
        await emit_batch(session, ActivityRecorded, recorded)
        await bulk.add_shared(session, fresh)
    return [o for o in outcomes if o is not None]


def _uuid_order(value: uuid.UUID) -> int:
    """Sort key matching Postgres' uuid order (bytes, big-endian), cheaper than UUID.__lt__."""
    return value.int


def _recorded_event(event: NewActivity, event_id: uuid.UUID) -> BatchEvent:
    """The event's `activity.recorded` (its data is checked against the contract with the batch's)."""
    return BatchEvent(
        event_id,  # the event's own id, not the (client-chosen) activity id
        event.occurred_at,
        {
            "activity_id": event.id,
            "member_id": event.member_id,
            "community_id": event.community_id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "local_date": event.local_date,
            "timezone": event.zone,
            "properties": event.properties,
        },
    )
