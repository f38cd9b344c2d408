"""Receiving events: `POST /internal/events` applies a batch in one transaction.

The event ids go into the `inbox` first (`ON CONFLICT DO NOTHING`); only the ids that
were new reach the handlers, in the same transaction, so a redelivered event changes
nothing and a failed batch leaves no trace (the relay retries it).

When a handler raises, the whole batch rolls back and the answer names the event that
failed (`500 event-handler-failed` with `event_id`), so the relay can deliver the rest
and retry (then park) only that one. A database that is unreachable or busy is the
consumer's trouble, not the event's: that answer is a 503 naming no event.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import structlog
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import SessionDep, utcnow
from services.common.events.tables import KitTables
from services.common.identity import Caller
from services.common.problems import Forbidden, ProblemError, ServiceUnavailable, problem_responses

log = structlog.get_logger("qunyun.inbox")


class Event(BaseModel):
    """An event as it travels between services."""

    id: uuid.UUID
    type: str = Field(max_length=100)
    source: str = Field(max_length=32)
    occurred_at: datetime
    data: dict[str, Any]


class EventBatch(BaseModel):
    events: list[Event] = Field(max_length=5000)


class EventBatchResult(BaseModel):
    applied: int
    duplicates: int


EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]


class EventHandlerFailed(ProblemError):
    """A handler raised on one event; the batch was rolled back. Names the event."""

    status, slug, title = 500, "event-handler-failed", "Event handler failed"

    def __init__(self, event: Event, index: int, error: BaseException) -> None:
        super().__init__(
            f"Handling {event.type} failed: {type(error).__name__}: {error}"[:500],
            event_id=str(event.id),
            event_type=event.type,
            index=index,
        )
        self.event = event


class BatchRejected(ProblemError):
    """A batch handler failed on a batch without saying which event: the relay halves it."""

    status, slug, title = 422, "event-batch-rejected", "Event batch rejected"


def _handler_failure(error: Exception, event: Event, index: int) -> ProblemError:
    log.exception("event_handler_failed", event_id=str(event.id), event_type=event.type)
    if _consumer_unavailable(error):
        return ServiceUnavailable("The database is not available; retry later.")
    return EventHandlerFailed(event, index, error)


def _consumer_unavailable(error: BaseException) -> bool:
    """Errors that say "this service cannot work right now", whatever the event."""
    if isinstance(error, OperationalError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, ProblemError):
        return error.status_code == 503
    return isinstance(error, DBAPIError) and error.connection_invalidated


async def record_new_events(session: AsyncSession, tables: KitTables, events: list[Event]) -> set[uuid.UUID]:
    """Insert the ids into the inbox; return those that were not there before."""
    if not events:
        return set()
    now = utcnow()
    rows = [{"event_id": e.id, "type": e.type, "source": e.source, "received_at": now} for e in events]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(tables.inbox).values(rows).on_conflict_do_nothing().returning(tables.inbox.c.event_id)
    return set((await session.execute(stmt)).scalars())


@runtime_checkable
class BatchEventHandler(Protocol):
    """A handler that can also take all of a batch's events at once (set-based work).

    `apply_events` calls `handle_batch` once per batch with every new event mapped to
    this handler, in order, instead of calling the handler once per event.
    """

    async def __call__(self, session: AsyncSession, event: Event) -> None: ...

    async def handle_batch(self, session: AsyncSession, events: list[Event]) -> None: ...


async def apply_events(
    session: AsyncSession, tables: KitTables, handlers: Mapping[str, EventHandler], events: list[Event]
) -> EventBatchResult:
    """Apply each new event's handler once, in order; duplicates are skipped.

    A handler's error is raised as `EventHandlerFailed` naming the event (the caller's
    transaction must roll back), or as `ServiceUnavailable` when the database is the trouble.
    """
    unique = list({e.id: e for e in events}.values())
    new_ids = await record_new_events(session, tables, unique)
    handled: set[uuid.UUID] = set()
    batched: dict[int, tuple[BatchEventHandler, list[tuple[int, Event]]]] = {}
    for index, event in enumerate(events):
        if event.id not in new_ids or event.id in handled:
            continue
        handled.add(event.id)  # the same id twice in one batch is applied once
        handler = handlers.get(event.type)
        if handler is None:
            continue
        if isinstance(handler, BatchEventHandler):
            batched.setdefault(id(handler), (handler, []))[1].append((index, event))
            continue
        try:
            await handler(session, event)
        except Exception as exc:
            raise _handler_failure(exc, event, index) from exc
    for batch_handler, items in batched.values():
        try:
            await batch_handler.handle_batch(session, [event for _, event in items])
        except Exception as exc:
            if len(items) == 1:
                raise _handler_failure(exc, items[0][1], items[0][0]) from exc
            # The failing event is unknown: reject the batch so the relay narrows it down.
            log.exception("event_batch_handler_failed", events=len(items))
            if _consumer_unavailable(exc):
                raise ServiceUnavailable("The database is not available; retry later.") from exc
            raise BatchRejected(f"Handling a batch of {len(items)} events failed; send fewer.") from exc
    return EventBatchResult(applied=len(new_ids), duplicates=len(events) - len(new_ids))


def events_router(tables: KitTables, handlers: Mapping[str, EventHandler]) -> APIRouter:
    """The service's `/internal/events` endpoint, fed by other services' relays."""
    router = APIRouter(tags=["internal"], include_in_schema=False)

    @router.post("/internal/events", responses=problem_responses(401, 403, 422, 500, 503))
    async def receive_events(batch: EventBatch, session: SessionDep, caller: Caller) -> EventBatchResult:
        """Apply a batch of events from another service's relay."""
        if caller.kind != "system":
            raise Forbidden("Only relays post events.")
        return await apply_events(session, tables, handlers, batch.events)

    return router
