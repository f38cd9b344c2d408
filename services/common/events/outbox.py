"""Writing events: `emit` puts the event in the outbox in the caller's transaction.

Each session made by a service's `Database` carries the service's `Outbox` in
`session.info`, so any service function can `await emit(session, "member.created", data)`
and the event commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import new_id, utcnow
from services.common.events.tables import KitTables
from services.common.settings import ServiceName, Settings


@dataclass(frozen=True)
class EventDraft:
    type: str
    data: dict[str, Any]
    id: uuid.UUID | None = None
    occurred_at: datetime | None = None


class Outbox:
    """A service's outbox: its tables, its name as event source, and who subscribes."""

    def __init__(self, tables: KitTables, source: ServiceName, settings: Settings) -> None:
        self.tables = tables
        self.source = source
        self.settings = settings

    @property
    def subscribers(self) -> list[str]:
        return [name for name in self.settings.event_route_table if name != self.source]

    async def write(self, session: AsyncSession, drafts: Sequence[EventDraft]) -> list[uuid.UUID]:
        if not drafts:
            return []
        now = utcnow()
        ids = [d.id or new_id() for d in drafts]
        rows = [
            {"id": event_id, "type": d.type, "occurred_at": d.occurred_at or now, "data": _as_json(d.data)}
            for event_id, d in zip(ids, drafts, strict=True)
        ]
        pending = [
            {"subscriber": subscriber, "event_id": event_id, "attempts": 0, "next_attempt_at": now}
            for event_id, d in zip(ids, drafts, strict=True)
            for subscriber in self.settings.subscribers_for(self.source, d.type)
        ]
        await session.execute(self.tables.outbox.insert(), rows)
        if pending:
            await session.execute(self.tables.outbox_pending.insert(), pending)
            session.info["outbox_written"] = True
        return ids


def _as_json(data: dict[str, Any]) -> Any:
    """`data` as JSON values: UUIDs, datetimes and models become JSON, not a flush error.
    Data that is JSON already (the common case) is kept as is: the C encoder checks it in a
    few microseconds, `jsonable_encoder` walks it in Python (~60 us per event)."""
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return jsonable_encoder(data)
    return data


def outbox_of(session: AsyncSession) -> Outbox:
    outbox = session.info.get("outbox")
    if not isinstance(outbox, Outbox):
        raise RuntimeError("this session was not made by a service Database with an outbox")
    return outbox


async def emit(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Record an event in the outbox, in the same transaction as the change it describes."""
    ids = await outbox_of(session).write(session, [EventDraft(event_type, data, event_id, occurred_at)])
    return ids[0]


async def emit_many(session: AsyncSession, drafts: Sequence[EventDraft]) -> list[uuid.UUID]:
    """Record many events with one multi-row insert (batch ingest)."""
    return await outbox_of(session).write(session, drafts)
