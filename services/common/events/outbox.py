"""Writing events: `emit` puts the event in the outbox in the caller's transaction.

Each session made by a service's `Database` carries the service's `Outbox` in
`session.info`, so any service function can `await emit(session, MemberCreated(...))` and
the event commits (or rolls back) with the change it describes. Events are contract models
(`services.common.contracts`): the type comes from the model, the data is its JSON, and the
subscribers come from the subscription table.

A batch of events costs one statement whatever its size: each column goes as one array
and `unnest` turns the arrays back into rows.

`emit_batch` goes further for a service whose outbox has batch rows (`batches=True` in
`define_kit_tables`): many events of one type become ONE outbox row (`batch_size` = how
many, `data` = the list of `{id, occurred_at, data}`) and one pending row per subscriber,
instead of one plus one per subscriber for each event. Nothing outside the producer sees
the difference: the relay turns the row back into one envelope per event, each with its
own id, so consumers' inboxes, the contracts and partner webhooks are as before (see
`relay`). Batch ingest writes a thousand `activity.recorded` per request this way.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts import SUBSCRIPTIONS, EventModel, Subscriptions, subscribers_for
from services.common.db import new_id, utcnow, wake_after_commit
from services.common.events.tables import KitTables
from services.common.settings import ServiceName, Settings

# The wake-up channel of a commit that wrote events (the relay listens on it).
OUTBOX_CHANNEL = "outbox"


@dataclass(frozen=True, slots=True)
class EventDraft:
    """One event to write: its contract model, and optionally a chosen id and time."""

    event: EventModel
    id: uuid.UUID | None = None
    occurred_at: datetime | None = None

    @property
    def type(self) -> str:
        return self.event.event_type


def event_json(data: dict[str, Any]) -> str:
    """`data` as JSON text, as `jsonable_encoder` + `json.dumps` would write it, several times faster.

    orjson knows str, numbers, dicts, lists, UUIDs, datetimes, dataclasses and enums itself;
    anything else (models, Decimal, sets) goes through `jsonable_encoder`. Integers beyond
    64 bits, which orjson refuses, take the slow path whole.
    """
    try:
        return orjson.dumps(data, default=jsonable_encoder, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(jsonable_encoder(data), separators=(",", ":"))


@functools.cache
def _list_of(contract: type[EventModel]) -> TypeAdapter[list[EventModel]]:
    return TypeAdapter(list[contract])  # type: ignore[valid-type]


class Outbox:
    """A service's outbox: its tables, its name as event source, and who subscribes.

    `subscriptions` is the kit's table (`contracts.SUBSCRIPTIONS`); the kit's own tests
    give theirs."""

    def __init__(
        self,
        tables: KitTables,
        source: ServiceName,
        settings: Settings,
        *,
        subscriptions: Subscriptions = SUBSCRIPTIONS,
    ) -> None:
        self.tables = tables
        self.source = source
        self.settings = settings
        self.subscriptions = subscriptions
        self._subscribers: dict[str, list[str]] = {}

    @property
    def subscribers(self) -> list[str]:
        return [name for name in self.subscriptions if name != self.source]

    def subscribers_for(self, event_type: str) -> list[str]:
        """Who gets events of this type (cached: the table is fixed for the outbox's life)."""
        found = self._subscribers.get(event_type)
        if found is None:
            found = self._subscribers[event_type] = subscribers_for(self.subscriptions, self.source, event_type)
        return found

    async def write(self, session: AsyncSession, drafts: Sequence[EventDraft]) -> list[uuid.UUID]:
        if not drafts:
            return []
        now = utcnow()
        ids = [d.id or new_id() for d in drafts]
        occurred = [d.occurred_at or now for d in drafts]
        for moment in occurred:
            if moment.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
        routes = {d.type: self.subscribers_for(d.type) for d in drafts}
        await self._write_unnest(session, ids, drafts, occurred, routes, now)
        if any(routes.values()):
            wake_after_commit(session, OUTBOX_CHANNEL)
        return ids

    async def write_batch(
        self,
        session: AsyncSession,
        contract: type[EventModel],
        ids: Sequence[uuid.UUID],
        occurred: Sequence[datetime],
        data: Sequence[dict[str, Any] | EventModel],
    ) -> None:
        """Write events of one contract as one batch row: each event's id, when it happened
        and its data, by position: a dict, or the contract's model (validated when it was
        made, so taken as it is).

        The data is held to the contract as strictly as `emit` holds one event (validated
        in one call for the whole batch), and written as the contract serialises it: each
        event's `data` is byte for byte what `write` would store for it."""
        if not ids:
            return
        if not len(ids) == len(occurred) == len(data):
            raise ValueError("one id, time and data per event")
        outbox = self.tables.outbox
        if "batch_size" not in outbox.c:
            raise RuntimeError(f"{self.source}'s outbox has no batch rows (define_kit_tables(batches=True))")
        for moment in occurred:
            if moment.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
        models = _list_of(contract).validate_python(data)
        text = to_json(
            [
                {"id": event_id, "occurred_at": moment.astimezone(UTC), "data": model}
                for event_id, moment, model in zip(ids, occurred, models, strict=True)
            ]
        ).decode()
        subscribers = self.subscribers_for(contract.event_type)
        now = utcnow()
        connection = await session.connection()
        await connection.exec_driver_sql(
            f"WITH written AS ("
            f" INSERT INTO {outbox.name} (id, type, occurred_at, data, batch_size)"
            " VALUES ($1, $2, $3, $4::json, $5) RETURNING id)"
            f" INSERT INTO {self.tables.outbox_pending.name} (subscriber, event_id, attempts, next_attempt_at)"
            " SELECT subscriber, written.id, 0, $3 FROM written, unnest($6::text[]) AS subscriber",
            (new_id(), contract.event_type, now, text, len(ids), subscribers),
        )
        if subscribers:
            wake_after_commit(session, OUTBOX_CHANNEL)

    async def _write_unnest(
        self,
        session: AsyncSession,
        ids: list[uuid.UUID],
        drafts: Sequence[EventDraft],
        occurred: list[datetime],
        routes: dict[str, list[str]],
        now: datetime,
    ) -> None:
        # One statement: the events from column arrays, then one pending row per event and
        # subscriber, joined on the (type, subscriber) routes rather than sent row by row.
        route_types = [t for t, subscribers in routes.items() for _ in subscribers]
        route_subscribers = [s for subscribers in routes.values() for s in subscribers]
        connection = await session.connection()
        await connection.exec_driver_sql(
            f"WITH written AS ("
            f" INSERT INTO {self.tables.outbox.name} (id, type, occurred_at, data)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::json[])"
            " RETURNING id, type)"
            f" INSERT INTO {self.tables.outbox_pending.name} (subscriber, event_id, attempts, next_attempt_at)"
            " SELECT route.subscriber, written.id, 0, $7 FROM written"
            " JOIN unnest($5::text[], $6::text[]) AS route(type, subscriber) ON route.type = written.type",
            (
                ids,
                [d.type for d in drafts],
                occurred,
                [d.event.model_dump_json() for d in drafts],
                route_types,
                route_subscribers,
                now,
            ),
        )


# A field name patched into an event's data by SQL: plain identifiers only (they are written
# into the statement as string literals).
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class EventInStatement:
    """One event written by data-modifying CTEs of a caller's statement (`event_ctes`): the
    CTE text and the values of its parameters, which follow the caller's own."""

    sql: str
    args: tuple[Any, ...]


def event_ctes(
    session: AsyncSession,
    draft: EventDraft,
    *,
    first: int,
    gate: str,
    computed: Mapping[str, str] | None = None,
) -> EventInStatement:
    """The outbox write of one event as CTEs (`outbox_event`, `outbox_routes`) for a
    statement that also makes the change it describes, saving the round trip of `emit`.

    The event is written only if the caller's CTE `gate` has a row (at most one).
    `computed` maps fields of the event's data to SQL expressions the statement computes
    (a balance after the change): the model is validated in Python with stand-in values
    and the statement writes the real ones over them. Parameters are `$first` onwards.
    Wakes the relay after commit, as `emit` does."""
    outbox = outbox_of(session)
    data = _data_sql(first + 3, computed)
    sql = (
        f"outbox_event AS (INSERT INTO {outbox.tables.outbox.name} (id, type, occurred_at, data)"
        f" SELECT ${first}::uuid, ${first + 1}::text, ${first + 2}::timestamptz, {data} FROM {gate}"
        " RETURNING id),\n"
        f"outbox_routes AS (INSERT INTO {outbox.tables.outbox_pending.name}"
        " (subscriber, event_id, attempts, next_attempt_at)"
        f" SELECT route.subscriber, outbox_event.id, 0, ${first + 5}::timestamptz FROM outbox_event"
        f" CROSS JOIN unnest(${first + 4}::text[]) AS route(subscriber))"
    )
    args = event_args(outbox, draft)
    if args[4]:
        wake_after_commit(session, OUTBOX_CHANNEL)
    return EventInStatement(sql, args)


def event_call(*, first: int, computed: Mapping[str, str] | None = None) -> str:
    """The outbox write of one event as a call of the `outbox_write` SQL function for the
    RETURNING clause of the statement that makes the change:
    the event is written once per row the statement returns, so a statement that writes
    nothing (a guard failed) writes no event either, and one that is its own transaction
    needs no BEGIN/COMMIT for the two. Unlike `event_ctes` it leaves the statement an
    `INSERT`/`UPDATE` at the top.

    Returns the call's SQL (the same for the same arguments: a statement built once); its
    six parameters, `$first` onwards, are `event_args(outbox, draft)`. `computed` as in
    `event_ctes` (the expressions may name the returned row's columns). The caller wakes the
    relay after the commit (`wake_after_commit`, or `Database.wake` after a statement that
    committed on its own).

    The function is the service's own: its migration creates it (feedback's 0007 is the only
    one so far; copy it, and change it with any change to the kit's outbox columns), so a
    service that has not created it fails at its first call, not silently."""
    data = _data_sql(first + 3, computed)
    return (
        f"outbox_write(${first}::uuid, ${first + 1}::text, ${first + 2}::timestamptz, {data},"
        f" ${first + 4}::text[], ${first + 5}::timestamptz)"
    )


def event_args(outbox: Outbox, draft: EventDraft) -> tuple[Any, ...]:
    """The parameters of `event_call`'s SQL (id, type, occurred_at, data, subscribers, now);
    `subscribers` (the fifth) is empty when nobody takes the event (then wake nobody)."""
    now = utcnow()
    occurred_at = draft.occurred_at or now
    if occurred_at.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    subscribers = outbox.subscribers_for(draft.type)
    return (draft.id or new_id(), draft.type, occurred_at, draft.event.model_dump_json(), subscribers, now)


def _data_sql(param: int, computed: Mapping[str, str] | None) -> str:
    """The event's data: parameter `$param`, with the `computed` fields written over it."""
    fields = dict(computed or {})
    if any(_FIELD.match(name) is None for name in fields):
        raise ValueError("computed fields are plain identifiers")
    # Sent as text: the same value whether the statement runs through SQLAlchemy or on a
    # raw asyncpg pool (whose json codec would encode a string again).
    if not fields:
        return f"${param}::text::json"
    pairs = ", ".join(f"'{name}', {expression}" for name, expression in fields.items())
    return f"(${param}::text::jsonb || jsonb_build_object({pairs}))::json"


def outbox_of(session: AsyncSession) -> Outbox:
    outbox = session.info.get("outbox")
    if not isinstance(outbox, Outbox):
        raise RuntimeError("this session was not made by a service Database with an outbox")
    return outbox


async def emit(
    session: AsyncSession,
    event: EventModel,
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Record an event in the outbox, in the same transaction as the change it describes."""
    ids = await outbox_of(session).write(session, [EventDraft(event, event_id, occurred_at)])
    return ids[0]


async def emit_many(session: AsyncSession, drafts: Sequence[EventDraft]) -> list[uuid.UUID]:
    """Record many events with one statement (batch ingest)."""
    return await outbox_of(session).write(session, drafts)


async def emit_batch(
    session: AsyncSession,
    contract: type[EventModel],
    ids: Sequence[uuid.UUID],
    occurred: Sequence[datetime],
    data: Sequence[dict[str, Any] | EventModel],
) -> None:
    """Record many events of one contract as one outbox row (batch ingest; see `Outbox.write_batch`)."""
    await outbox_of(session).write_batch(session, contract, ids, occurred, data)
