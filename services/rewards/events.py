"""Events the rewards service consumes, and how a relay's batch reaches them.

Consumed (its line in `services.common.contracts.subscriptions`): `activity.recorded`
(earning), `feedback.suggestion_completed` (the author earns by the rule
`suggestion_completed`, as an activity of that type), `moderation.sanction_applied` and
`moderation.sanction_lifted` (a member's mutes and bans: no points while one holds) and
`member.erased` (privacy).
Emitted, through the outbox in the transaction of the change (contracts in
`services.common.contracts.rewards`): `rewards.points_awarded`,
`rewards.points_deducted`, `rewards.points_expired`, `rewards.level_changed`,
`rewards.badge_awarded`, `rewards.redemption_created`, `rewards.redemption_cancelled`.

Earning is set-based: the kit's inbox hands each batch's new events, parsed with their
contracts, to `apply_new_events` (its `batch_handler` hook), which gives every run of
consecutive `activity.recorded` events to the earning batch in one call and the rest to
their per-event handlers, in delivery order. `EVENT_HANDLERS` stay valid per-event
handlers (a batch of one).
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.erasure import RewardsMemberErased
from services.common.contracts.feedback import SuggestionCompleted
from services.common.contracts.members import MemberErased
from services.common.contracts.moderation import SanctionApplied, SanctionLifted
from services.common.db import utcnow
from services.common.events import Event, EventHandlers, emit
from services.rewards.earning.sanctions import apply_sanction_applied, apply_sanction_lifted
from services.rewards.earning.service import activity_from_suggestion, apply_activity_batch
from services.rewards.privacy.service import erase_member


async def handle_activity_recorded(session: AsyncSession, event: Event[ActivityRecorded]) -> None:
    await apply_activity_batch(session, [event])


async def handle_suggestion_completed(session: AsyncSession, event: Event[SuggestionCompleted]) -> None:
    activity = await activity_from_suggestion(session, event.data)
    await apply_activity_batch(
        session, [Event(event.id, ActivityRecorded.event_type, event.source, event.occurred_at, activity)]
    )


async def handle_sanction_applied(session: AsyncSession, event: Event[SanctionApplied]) -> None:
    await apply_sanction_applied(session, event.data)


async def handle_sanction_lifted(session: AsyncSession, event: Event[SanctionLifted]) -> None:
    await apply_sanction_lifted(session, event.data)


async def handle_member_erased(session: AsyncSession, event: Event[MemberErased]) -> None:
    await erase_member(session, event.data.member_id, event.data.erased_at)
    # The confirmation the gateway records (GET /v1/members/{id}/erasure), in the erasure's transaction.
    await emit(session, RewardsMemberErased(member_id=event.data.member_id, erased_at=utcnow()))


EVENT_HANDLERS: EventHandlers = {
    ActivityRecorded: handle_activity_recorded,
    SuggestionCompleted: handle_suggestion_completed,
    SanctionApplied: handle_sanction_applied,
    SanctionLifted: handle_sanction_lifted,
    MemberErased: handle_member_erased,
}
_BY_TYPE = {model.event_type: handler for model, handler in EVENT_HANDLERS.items()}


async def apply_new_events(session: AsyncSession, events: list[Event[Any]]) -> None:
    """The kit's batch handler: the new events of a batch, a run of the same type at a time."""
    for event_type, run in itertools.groupby(events, key=lambda e: e.type):
        if event_type == ActivityRecorded.event_type:
            await apply_activity_batch(session, list(run))
        elif handler := _BY_TYPE.get(event_type):
            for event in run:
                await handler(session, event)
