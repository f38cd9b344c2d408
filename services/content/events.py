"""Events the content service emits and the handlers for those it consumes.

Emitted (contracts in `services.common.contracts.content`), through the outbox in the
transaction of the change: `content.post_submitted`, `content.post_approved`,
`content.post_rejected`, `content.post_scheduled`, `content.post_cancelled`,
`content.post_published` (by the publisher) and `content.poll_voted` (members records it
as `poll_voted` activity, which then flows to rewards like any other).

Consumed (its line in `services.common.contracts.subscriptions`), all event-carried state:
`member.created` / `member.updated` (marketing consent for the contact budget),
`member.joined_community` / `member.left_community` (who may vote),
`activity.recorded` (the hour-of-week histogram behind best times, and each community's
zone) and `member.erased` (privacy). Runs of `activity.recorded` in a batch are counted
with one statement (`apply_new_events`, the kit's batch hook).
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.erasure import ContentMemberErased
from services.common.contracts.members import (
    MemberCreated,
    MemberErased,
    MemberJoinedCommunity,
    MemberLeftCommunity,
    MemberUpdated,
)
from services.common.db import utcnow
from services.common.events import Event, EventHandlers, emit
from services.content.communities import service as communities
from services.content.privacy.service import erase_member


async def handle_activity_recorded(session: AsyncSession, event: Event[ActivityRecorded]) -> None:
    await communities.record_activity(session, [event])


async def handle_member_created(session: AsyncSession, event: Event[MemberCreated]) -> None:
    await communities.record_consent(session, event.data.member_id, event.data.consent.marketing, event.occurred_at)


async def handle_member_updated(session: AsyncSession, event: Event[MemberUpdated]) -> None:
    if event.data.consent is not None:
        await communities.record_consent(session, event.data.member_id, event.data.consent.marketing, event.occurred_at)


async def handle_member_joined(session: AsyncSession, event: Event[MemberJoinedCommunity]) -> None:
    await communities.record_join(session, event.data.community_id, event.data.member_id, event.data.joined_at)


async def handle_member_left(session: AsyncSession, event: Event[MemberLeftCommunity]) -> None:
    await communities.record_leave(session, event.data.community_id, event.data.member_id)


async def handle_member_erased(session: AsyncSession, event: Event[MemberErased]) -> None:
    await erase_member(session, event.data.member_id)
    # The confirmation the gateway records (GET /v1/members/{id}/erasure), in the erasure's transaction.
    await emit(session, ContentMemberErased(member_id=event.data.member_id, erased_at=utcnow()))


EVENT_HANDLERS: EventHandlers = {
    ActivityRecorded: handle_activity_recorded,
    MemberCreated: handle_member_created,
    MemberUpdated: handle_member_updated,
    MemberJoinedCommunity: handle_member_joined,
    MemberLeftCommunity: handle_member_left,
    MemberErased: handle_member_erased,
}
_BY_TYPE = {model.event_type: handler for model, handler in EVENT_HANDLERS.items()}


async def apply_new_events(session: AsyncSession, events: list[Event[Any]]) -> None:
    """The kit's batch handler: runs of `activity.recorded` in one statement, the rest one by one."""
    for event_type, run in itertools.groupby(events, key=lambda e: e.type):
        if event_type == ActivityRecorded.event_type:
            await communities.record_activity(session, list(run))
        elif handler := _BY_TYPE.get(event_type):
            for event in run:
                await handler(session, event)
