"""Events between services: outbox (write), relay (deliver), inbox (apply once)."""

from services.common.events.inbox import (
    BatchHandler,
    Event,
    EventHandler,
    apply_events,
    events_router,
)
from services.common.events.outbox import EventDraft, Outbox, emit, emit_many
from services.common.events.relay import Relay
from services.common.events.tables import KitTables, define_kit_tables

__all__ = [
    "BatchHandler",
    "Event",
    "EventDraft",
    "EventHandler",
    "KitTables",
    "Outbox",
    "Relay",
    "apply_events",
    "define_kit_tables",
    "emit",
    "emit_many",
    "events_router",
]
