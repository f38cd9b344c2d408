"""Who receives which events: the subscription table, declared in code.

A service may not import another service's modules, so the table lives here in the kit,
next to the contracts it names. Relays route from it (a producer's outbox writes one
pending delivery per subscriber of the event's type), and each service's app checks at
start-up that the handlers it registers are exactly what it subscribes to, so adding a
consumer means adding its handler and its line here, nothing in the environment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Literal

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.base import EventModel
from services.common.contracts.content import PollVoted
from services.common.contracts.feedback import SuggestionCompleted
from services.common.contracts.members import (
    MemberCreated,
    MemberErased,
    MemberJoinedCommunity,
    MemberLeftCommunity,
    MemberUpdated,
)
from services.common.contracts.moderation import SanctionApplied, SanctionLifted
from services.common.contracts.rewards import LevelChanged
from services.common.settings import ServiceName

ALL: Literal["*"] = "*"
# A subscriber takes every event type (ALL) or the types of these contracts.
Subscription = frozenset[type[EventModel]] | Literal["*"]
Subscriptions = Mapping[ServiceName, Subscription]

SUBSCRIPTIONS: Subscriptions = MappingProxyType(
    {
        # Partner webhooks: every event, filtered per endpoint by its `event_types`; also the
        # erasure record (`member.erased` and each `<service>.member_erased`, see contracts.erasure).
        "gateway": ALL,
        # Earning (set-based per batch), the author's reward for a completed suggestion, erasure,
        # and mutes and bans (event-carried state: no points while one holds).
        "rewards": frozenset({ActivityRecorded, SuggestionCompleted, SanctionApplied, SanctionLifted, MemberErased}),
        # Content: event-carried state (consent for the contact budget, memberships for polls,
        # the activity histogram and zones for best times) and erasure.
        "content": frozenset(
            {ActivityRecorded, MemberCreated, MemberUpdated, MemberJoinedCommunity, MemberLeftCommunity, MemberErased}
        ),
        # Members records a poll vote as `poll_voted` activity (then it flows on like any other).
        "members": frozenset({PollVoted}),
        # Feedback: voters' levels weigh suggestion votes, memberships decide who reads a
        # community's rules and reports in it (event-carried state), and erasure.
        "feedback": frozenset({LevelChanged, MemberJoinedCommunity, MemberLeftCommunity, MemberErased}),
    }
)


def subscribes(subscription: Subscription, event_type: str) -> bool:
    return subscription == ALL or any(model.event_type == event_type for model in subscription)


def subscribers_for(subscriptions: Subscriptions, source: str, event_type: str) -> list[str]:
    """The services other than `source` that receive events of this type, in table order."""
    return [name for name, taken in subscriptions.items() if name != source and subscribes(taken, event_type)]


class SubscriptionMismatch(RuntimeError):
    """A service's handlers and its declared subscription disagree (raised at start-up)."""


def check_handlers(
    service: str,
    subscriptions: Subscriptions,
    handled: Collection[type[EventModel]],
    *,
    batch_handler: bool,
) -> None:
    """Fail loudly unless the handlers registered by `service` are exactly its subscription.

    A subscription to ALL needs a batch handler (it owns every type); a set of types needs
    one handler per type, no more and no fewer (a batch handler may front them)."""
    declared = subscriptions.get(service, frozenset())  # type: ignore[call-overload]
    if declared == ALL:
        if not batch_handler or handled:
            raise SubscriptionMismatch(
                f"{service} subscribes to every event type: it needs a batch handler and no per-type handlers"
            )
        return
    names = {model.event_type for model in handled}
    wanted = {model.event_type for model in declared}
    missing, unexpected = sorted(wanted - names), sorted(names - wanted)
    if missing or unexpected:
        raise SubscriptionMismatch(
            f"{service}'s event handlers do not match its subscription in services.common.contracts."
            f"subscriptions: no handler for {missing or 'nothing'}; handlers nobody routes to it: "
            f"{unexpected or 'none'}"
        )
    if batch_handler and not wanted:
        raise SubscriptionMismatch(f"{service} has a batch handler but subscribes to no event type")
