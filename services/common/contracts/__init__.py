"""Event contracts: one typed model per event type, and who subscribes to what.

Producers emit model instances (`emit(session, MemberErased(...))`), consumers receive
them parsed (`Event[MemberErased]`), and the gateway's webhook catalogue is generated from
the same models, so what is documented is what is sent. See `base` for how strict each side
is, the domain modules for the contracts, and `subscriptions` for the routing table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Importing the domain modules registers their contracts.
from services.common.contracts import (  # noqa: F401
    activity,
    content,
    erasure,
    feedback,
    members,
    moderation,
    rewards,
    webhook,
)
from services.common.contracts.base import (
    EVENT_TYPES,
    ContractPart,
    EventModel,
    UnknownEventType,
    UtcDatetime,
    contract_for,
)
from services.common.contracts.subscriptions import (
    ALL,
    SUBSCRIPTIONS,
    Subscription,
    SubscriptionMismatch,
    Subscriptions,
    check_handlers,
    subscribers_for,
)

# The kit's own contracts, i.e. the published catalogue: everything registered by the
# imports above, before any test registers contracts of its own.
PUBLISHED_EVENT_TYPES: Mapping[str, type[EventModel]] = MappingProxyType(dict(EVENT_TYPES))

__all__ = [
    "ALL",
    "EVENT_TYPES",
    "PUBLISHED_EVENT_TYPES",
    "SUBSCRIPTIONS",
    "ContractPart",
    "EventModel",
    "Subscription",
    "SubscriptionMismatch",
    "Subscriptions",
    "UnknownEventType",
    "UtcDatetime",
    "check_handlers",
    "contract_for",
    "subscribers_for",
]
