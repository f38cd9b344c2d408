"""Recording activity: the hot path, a fixed number of statements per batch whatever its size.

A batch of N events costs one query to find unknown members and one for communities, then
three statements: the events whose id is new (INSERT ... ON CONFLICT (id) DO NOTHING RETURNING
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.db import new_ids, utcnow
from services.common.events import emit_batch
from services.common.problems import ProblemError, Unprocessable
from services.members.activity import bulk
from services.members.activity.schemas import ActivityCreate, ActivityInput, activity_input
from services.members.communities.service import CommunityNotFound, community_zones
from services.members.profiles.service import MemberNotFound, resolve_member_ids, unknown_member_ids

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


@dataclass
class Written:
    """What recording a batch did, by input position, without an object per event."""

    problems: list[tuple[int, ProblemError]] = field(default_factory=list)
    # (position, event id) of each event sent to the database, and of each repeat of an id
    # earlier in the same batch (a duplicate).
    sent: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    repeats: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    inserted: set[uuid.UUID] = field(default_factory=set)  # the sent ids that were new

    @property
    def duplicates(self) -> int:
        return len(self.repeats) + len(self.sent) - len(self.inserted)


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
    written = await record_batch(
        session, [item if isinstance(item, ProblemError) else activity_input(item) for item in items], now=now
    )
    outcomes: list[Outcome | None] = [None] * len(items)
    for index, problem in written.problems:
        outcomes[index] = problem
    for index, event_id in written.sent:
        outcomes[index] = Recorded(event_id, duplicate=event_id not in written.inserted)
    for index, event_id in written.repeats:
        outcomes[index] = Recorded(event_id, duplicate=True)
    return [o for o in outcomes if o is not None]


async def record_batch(
    session: AsyncSession, items: Sequence[ActivityInput | ProblemError], *, now: datetime | None = None
) -> Written:
    """Record the valid items once each (the problems stay where they are)."""
    now = now or utcnow()
    written = Written()
    valid: list[tuple[int, ActivityInput]] = []
    for index, item in enumerate(items):
        if isinstance(item, ProblemError):
            written.problems.append((index, item))
        else:
            valid.append((index, item))

    member_ids: set[uuid.UUID] = set()
    external_ids: set[str] = set()
    community_ids: set[uuid.UUID] = set()
    for _, item in valid:
        member_id, external_id = item.get("member_id"), item.get("external_id")
        if member_id is not None:
            member_ids.add(member_id)
        elif external_id is not None:
            external_ids.add(external_id)
        community_ids.add(item["community_id"])
    unknown = await unknown_member_ids(session, member_ids)
    by_external = (await resolve_member_ids(session, set(), external_ids))[1] if external_ids else {}
    zones = await community_zones(session, community_ids)
    # One ZoneInfo per community, not one lookup per event.
    tzinfos = {community_id: ZoneInfo(name) for community_id, name in zones.items()}

    # By event id (as an int: hashed and sorted in C, as Postgres orders uuids), what its row
    # and its `activity.recorded` need, in `bulk.ActivityColumns`' order.
    pending: dict[int, tuple[Any, ...]] = {}
    for index, item in valid:
        member_ref, external_id = item.get("member_id"), item.get("external_id")
        if member_ref is None and external_id is None:
            written.problems.append((index, MissingMemberReference()))
            continue
        member_id = None if member_ref is None or (unknown and member_ref in unknown) else member_ref
        if member_id is None and external_id is not None:
            member_id = by_external.get(external_id)
        community_id = item["community_id"]
        tz = tzinfos.get(community_id)
        if member_id is None:
            written.problems.append((index, MemberNotFound("No such member.")))
        elif tz is None:
            written.problems.append((index, CommunityNotFound("No such community.")))
        else:
            event_id = item.get("id") or uuid.uuid4()
            key = event_id.int
            if key in pending:  # a repeated id within the batch is a duplicate
                written.repeats.append((index, event_id))
                continue
            occurred_at = item.get("occurred_at") or now
            local = occurred_at.astimezone(tz)
            pending[key] = (
                index,
                event_id,
                community_id,
                member_id,
                item["type"],
                occurred_at,
                local.date(),
                local.hour,
                zones[community_id],
                item.get("properties") or {},
            )
    written.problems.sort(key=_position)
    if not pending:
        return written

    # In id order (see bulk: the lock order), as columns.
    batch = bulk.ActivityColumns(*zip(*(pending[key] for key in sorted(pending)), strict=True))
    written.sent = list(zip(batch.positions, batch.ids, strict=True))
    written.inserted = await bulk.insert_activities(session, batch, now)
    if not written.inserted:
        return written
    if len(written.inserted) < len(batch.ids):  # some were recorded before: only the new ones count
        batch = batch.only([i for i, event_id in enumerate(batch.ids) if event_id in written.inserted])
    # One outbox row for the whole batch: the relay delivers each event (see outbox).
    await emit_batch(
        session,
        ActivityRecorded,
        new_ids(len(batch.ids)),  # the events' own ids, not the (client-chosen) activity ids
        batch.occurred,
        [
            {
                "activity_id": activity_id,
                "member_id": member_id,
                "community_id": community_id,
                "type": activity_type,
                "occurred_at": occurred_at,
                "local_date": local_date,
                "timezone": zone,
                "properties": properties,
            }
            for activity_id, community_id, member_id, activity_type, occurred_at, local_date, zone, properties in zip(
                batch.ids,
                batch.community_ids,
                batch.member_ids,
                batch.types,
                batch.occurred,
                batch.local_dates,
                batch.zones,
                batch.properties,
                strict=True,
            )
        ],
    )
    await bulk.add_shared(session, batch)
    return written


def _position(problem: tuple[int, ProblemError]) -> int:
    return problem[0]
