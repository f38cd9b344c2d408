"""Receiving events: `POST /internal/events` applies a batch in one transaction.

The event ids go into the `inbox` first (`ON CONFLICT DO NOTHING`); only the ids that
were new reach the handlers, in the same transaction, so a redelivered event changes
nothing and a failed batch leaves no trace (the relay retries it).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import SessionDep, utcnow
from services.common.events.tables import KitTables
from services.common.identity import Caller
from services.common.problems import Forbidden


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
    """Apply each new event's handler once, in order; duplicates are skipped."""
    unique = list({e.id: e for e in events}.values())
    new_ids = await record_new_events(session, tables, unique)
    batched: dict[int, tuple[BatchEventHandler, list[Event]]] = {}
    for event in unique:
        if event.id in new_ids and (handler := handlers.get(event.type)):
            if isinstance(handler, BatchEventHandler):
                batched.setdefault(id(handler), (handler, []))[1].append(event)
            else:
                await handler(session, event)
    for batch_handler, batch_events in batched.values():
        await batch_handler.handle_batch(session, batch_events)
    return EventBatchResult(applied=len(new_ids), duplicates=len(events) - len(new_ids))


def events_router(tables: KitTables, handlers: Mapping[str, EventHandler]) -> APIRouter:
    """The service's `/internal/events` endpoint, fed by other services' relays."""
    router = APIRouter(tags=["internal"], include_in_schema=False)

    @router.post("/internal/events")
    async def receive_events(batch: EventBatch, session: SessionDep, caller: Caller) -> EventBatchResult:
        """Apply a batch of events from another service's relay."""
        if caller.kind != "system":
            raise Forbidden("Only relays post events.")
        return await apply_events(session, tables, handlers, batch.events)

    return router
