"""Events between services: outbox (write), relay (deliver), inbox (apply once)."""

from services.common.events.inbox import (
    BatchHandler,
    Event,
    EventEnvelope,
    EventHandler,
    EventHandlers,
    apply_events,
    events_router,
    parse_event,
)
from services.common.events.outbox import (
    OUTBOX_CHANNEL,
    EventDraft,
    EventInStatement,
    Outbox,
    emit,
    emit_batch,
    emit_many,
    event_args,
    event_call,
    event_ctes,
)
from services.common.events.relay import Relay
from services.common.events.tables import KitTables, define_kit_tables

__all__ = [
    "OUTBOX_CHANNEL",
    "BatchHandler",
    "Event",
    "EventDraft",
    "EventEnvelope",
    "EventHandler",
    "EventHandlers",
    "EventInStatement",
    "KitTables",
    "Outbox",
    "Relay",
    "apply_events",
    "define_kit_tables",
    "emit",
    "emit_batch",
    "emit_many",
    "event_args",
    "event_call",
    "event_ctes",
    "events_router",
    "parse_event",
]
