"""Receiving events: `POST /internal/events` applies a batch in one transaction.

The event ids go into the `inbox` first (`ON CONFLICT DO NOTHING`); only the ids that
were new reach the handlers, in the same transaction, so a redelivered event changes
nothing and a failed batch leaves no trace (the relay retries it).

Handlers get each event parsed with its contract (`Event[MemberErased]`: `event.data` is
the model), tolerantly (fields this version does not know are ignored, see
`contracts.base`). An event whose data breaks its contract, or whose type has no contract,
is rejected like an event its handler failed on: named, retried, then parked by the relay,
never silently dropped.

A service that applies events set-based gives `events_router` a `batch_handler`: it gets
all the new events of a batch (after the inbox dropped repeats, in delivery order) in one
call, instead of one per-type handler call per event.

When a handler raises, the whole batch rolls back and the answer names the event that
failed (`500 event-handler-failed` with `event_id`), so the relay can deliver the rest
and retry (then park) only that one. A batch handler that fails without naming an event
is replayed one event at a time (in a fresh transaction, rolled back afterwards) to find
it. A database that is unreachable or busy is the consumer's trouble, not the event's:
that answer is a 503 naming no event.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import structlog
from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts import EventModel, UnknownEventType, contract_for
from services.common.db import SessionDep, utcnow
from services.common.events.tables import KitTables
from services.common.identity import Caller
from services.common.problems import (
    Forbidden,
    ProblemError,
    ServiceUnavailable,
    database_unavailable,
    problem_responses,
)

log = structlog.get_logger("qunyun.inbox")


class EventEnvelope(BaseModel):
    """An event as it travels between services (its data not yet read with its contract)."""

    id: uuid.UUID
    type: str = Field(max_length=100)
    source: str = Field(max_length=32)
    occurred_at: datetime
    data: dict[str, Any]


DataT = TypeVar("DataT", bound=EventModel, covariant=True)


@dataclass(frozen=True, slots=True)
class Event(Generic[DataT]):
    """An event as a handler receives it: `data` is its contract model."""

    id: uuid.UUID
    type: str
    source: str
    occurred_at: datetime
    data: DataT


def parse_event(envelope: EventEnvelope) -> Event[EventModel]:
    """Read an envelope's data with the contract of its type (tolerantly, see `contracts.base`).

    Raises `UnknownEventType` or pydantic's `ValidationError`."""
    data = contract_for(envelope.type).parse(envelope.data)
    return Event(envelope.id, envelope.type, envelope.source, envelope.occurred_at, data)


class EventBatch(BaseModel):
    events: list[EventEnvelope] = Field(max_length=5000)


class EventBatchResult(BaseModel):
    applied: int
    duplicates: int


# Handlers are registered per contract: `{MemberErased: on_member_erased}`.
EventHandler = Callable[[AsyncSession, Event[Any]], Awaitable[None]]
EventHandlers = Mapping[type[EventModel], EventHandler]
# Gets every new event of a batch at once (deduplicated, in order); may raise EventHandlerFailed.
BatchHandler = Callable[[AsyncSession, list[Event[Any]]], Awaitable[None]]


class EventHandlerFailed(ProblemError):
    """A handler raised on one event, or its data broke the contract; the batch was rolled
    back. Names the event."""

    status, slug, title = 500, "event-handler-failed", "Event handler failed"

    def __init__(self, event: EventEnvelope | Event[Any], index: int, error: BaseException) -> None:
        super().__init__(
            f"Handling {event.type} failed: {type(error).__name__}: {error}"[:500],
            event_id=str(event.id),
            event_type=event.type,
            index=index,
        )
        self.event = event


def _consumer_unavailable(error: BaseException) -> bool:
    """Errors that say "this service cannot work right now", whatever the event."""
    if isinstance(error, TimeoutError) or database_unavailable(error):
        return True
    return isinstance(error, ProblemError) and error.status_code == 503


def _inbox_insert(tables: KitTables) -> Any:
    """The inbox insert, built once per table, so SQLAlchemy's compiled cache and the
    driver's prepared statement are reused (a multi-row VALUES is compiled anew for every
    batch: ~100 ms for 500 events). One statement over arrays (`unnest`, one parameter per
    column whatever the batch size)."""
    inbox = tables.inbox
    cached = _INBOX_INSERTS.get(id(inbox))
    if cached is not None:
        return cached
    rows = (
        sa.func.unnest(
            sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid())),
            sa.bindparam("types", type_=postgresql.ARRAY(sa.String())),
            sa.bindparam("sources", type_=postgresql.ARRAY(sa.String())),
        )
        .table_valued("event_id", "type", "source")
        .render_derived()
    )
    statement = (
        postgresql.insert(inbox)
        .from_select(
            ["event_id", "type", "source", "received_at"],
            sa.select(
                rows.c.event_id,
                rows.c.type,
                rows.c.source,
                sa.bindparam("received_at", type_=inbox.c.received_at.type),
            ),
        )
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )
    _INBOX_INSERTS[id(inbox)] = statement
    return statement


_INBOX_INSERTS: dict[int, Any] = {}


async def record_new_events(session: AsyncSession, tables: KitTables, events: list[EventEnvelope]) -> set[uuid.UUID]:
    """Insert the ids into the inbox; return those that were not there before."""
    if not events:
        return set()
    params = {
        "ids": [e.id for e in events],
        "types": [e.type for e in events],
        "sources": [e.source for e in events],
        "received_at": utcnow(),
    }
    return set((await session.execute(_inbox_insert(tables), params)).scalars())


async def apply_events(
    session: AsyncSession,
    tables: KitTables,
    handlers: EventHandlers,
    events: list[EventEnvelope],
    batch_handler: BatchHandler | None = None,
) -> EventBatchResult:
    """Apply each new event once, in order; duplicates are skipped.

    Each new event is parsed with its contract first. With a `batch_handler`, it gets all
    the new events in one call (and `handlers` are not called: the batch handler owns every
    type); otherwise each event goes to the handler of its type. A handler's error, or data
    that breaks the contract, is raised as `EventHandlerFailed` naming the event (the
    caller's transaction must roll back), or as `ServiceUnavailable` when the database is
    the trouble.
    """
    unique = list({e.id: e for e in events}.values())  # the same id twice in one batch is applied once
    new_ids = await record_new_events(session, tables, unique)
    result = EventBatchResult(applied=len(new_ids), duplicates=len(events) - len(new_ids))
    fresh = [e for e in unique if e.id in new_ids]
    if batch_handler is not None:
        if fresh:
            await _apply_batch(session, batch_handler, [_parsed(e, events) for e in fresh], events)
        return result
    by_type = {model.event_type: handler for model, handler in handlers.items()}
    for envelope in fresh:
        handler = by_type.get(envelope.type)
        if handler is None:
            continue
        event = _parsed(envelope, events)
        try:
            await handler(session, event)
        except Exception as exc:
            raise _handler_error(exc, event, events) from exc
    return result


def _parsed(envelope: EventEnvelope, batch: list[EventEnvelope]) -> Event[EventModel]:
    try:
        return parse_event(envelope)
    except (ValidationError, UnknownEventType) as exc:
        log.warning("event_contract_broken", event_id=str(envelope.id), event_type=envelope.type, error=str(exc)[:500])
        raise EventHandlerFailed(envelope, _index_of(envelope, batch), exc) from exc


def _handler_error(error: Exception, event: Event[Any], batch: list[EventEnvelope]) -> ProblemError:
    log.exception("event_handler_failed", event_id=str(event.id), event_type=event.type)
    if _consumer_unavailable(error):
        return ServiceUnavailable("The database is not available; retry later.")
    return EventHandlerFailed(event, _index_of(event, batch), error)


def _index_of(event: EventEnvelope | Event[Any], batch: list[EventEnvelope]) -> int:
    return next(index for index, e in enumerate(batch) if e.id == event.id)


async def _apply_batch(
    session: AsyncSession, batch_handler: BatchHandler, fresh: list[Event[Any]], batch: list[EventEnvelope]
) -> None:
    try:
        await batch_handler(session, fresh)
        return
    except EventHandlerFailed:
        raise
    except Exception as exc:
        if _consumer_unavailable(exc):
            log.exception("event_batch_failed", events=len(fresh))
            raise ServiceUnavailable("The database is not available; retry later.") from exc
        failure: Exception = exc
    # Which event? The batch's transaction is void anyway: roll it back (its locks too, or
    # the replay would wait on them), replay one event at a time, then roll that back too.
    await session.rollback()
    try:
        for event in fresh:
            try:
                await batch_handler(session, [event])
            except Exception as exc:
                raise _handler_error(exc, event, batch) from exc
    finally:
        await session.rollback()
    # Each event alone goes through: the batch as a whole hit something passing (a
    # conflict with a concurrent transaction). The relay retries the batch later.
    log.error("event_batch_failed", events=len(fresh), error=f"{type(failure).__name__}: {failure}"[:300])
    raise ServiceUnavailable("The batch failed as a whole; retry later.") from failure


def events_router(tables: KitTables, handlers: EventHandlers, batch_handler: BatchHandler | None = None) -> APIRouter:
    """The service's `/internal/events` endpoint, fed by other services' relays.

    `batch_handler`, if given, receives all new events of each batch in one call."""
    router = APIRouter(tags=["internal"], include_in_schema=False)

    @router.post("/internal/events", responses=problem_responses(401, 403, 422, 500, 503))
    async def receive_events(batch: EventBatch, session: SessionDep, caller: Caller) -> EventBatchResult:
        """Apply a batch of events from another service's relay."""
        if caller.kind != "system":
            raise Forbidden("Only relays post events.")
        return await apply_events(session, tables, handlers, batch.events, batch_handler)

    return router
