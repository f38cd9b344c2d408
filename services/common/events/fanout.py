"""What a pending delivery stands for: one event, or each event of a batch row.

An outbox with batch rows (`define_kit_tables(batches=True)`, see `outbox.Outbox.write_batch`)
keeps many events of one type in one row: one pending row per subscriber for the whole
batch. The relay posts each of them as its own envelope (its own id, type, occurred_at and
data), exactly as if each had its own row, so consumers cannot tell. An event of a batch
that a subscriber rejects is split out for that subscriber: its own outbox row (same id)
and its own pending row, so it is retried and parked alone (see `relay`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import rfc3339
from services.common.events.tables import KitTables


def event_envelope(row: Any, source: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": row.type,
        "source": source,
        "occurred_at": rfc3339(row.occurred_at),
        "data": row.data,
    }


@dataclass(frozen=True, slots=True)
class Item:
    """One event to post: a pending row's event, or one of the events of a batch row."""

    row: Any
    id: uuid.UUID
    envelope: dict[str, Any]


def is_batch(row: Any) -> bool:
    return getattr(row, "batch_size", None) is not None


def items_of(row: Any, source: str) -> list[Item]:
    """The envelopes a pending row (joined to its outbox row) stands for."""
    if not is_batch(row):
        return [Item(row, row.event_id, event_envelope(row, source))]
    return [
        Item(
            row,
            uuid.UUID(event["id"]),
            {
                "id": event["id"],
                "type": row.type,
                "source": source,
                "occurred_at": event["occurred_at"],
                "data": event["data"],
            },
        )
        for event in row.data
    ]


async def split_out(
    session: AsyncSession,
    tables: KitTables,
    subscriber: str,
    item: Item,
    *,
    status: str,
    last_error: str,
    next_attempt_at: datetime,
) -> None:
    """Give one event of a batch row its own outbox row (same id, so the consumer's inbox
    still knows it; written once whichever subscriber splits it first) and, for
    `subscriber` only, its own pending row carrying its first rejection."""
    outbox, pending = tables.outbox, tables.outbox_pending
    envelope = item.envelope
    await session.execute(
        postgresql.insert(outbox)
        .values(
            id=item.id,
            type=envelope["type"],
            occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
            data=envelope["data"],
        )
        .on_conflict_do_nothing(index_elements=[outbox.c.id])
    )
    await session.execute(
        postgresql.insert(pending)
        .values(
            subscriber=subscriber,
            event_id=item.id,
            status=status,
            attempts=1,
            failure_kind="rejected",
            last_error=last_error,
            next_attempt_at=next_attempt_at,
        )
        .on_conflict_do_nothing()
    )
