"""Events the rewards service consumes, and how a relay's batch reaches them.

Consumed: `activity.recorded` (earning) and `member.erased` (privacy). Emitted, through
the outbox in the transaction of the change: `rewards.points_awarded`,
`rewards.points_deducted`, `rewards.points_expired`, `rewards.level_changed`,
`rewards.badge_awarded`, `rewards.redemption_created`, `rewards.redemption_cancelled`.

Earning is set-based: the kit's inbox hands each batch's new events to `apply_new_events`
(its `batch_handler` hook), which gives every run of consecutive `activity.recorded`
events to the earning batch in one call and the rest to their per-event handlers, in
delivery order. `EVENT_HANDLERS` stay valid per-event handlers (a batch of one).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from datetime import datetime

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.events import Event, EventHandler
from services.rewards.earning.service import apply_activity_batch
from services.rewards.privacy.service import erase_member

ACTIVITY_RECORDED = "activity.recorded"
MEMBER_ERASED = "member.erased"


log = structlog.get_logger("qunyun.rewards.events")


class MemberErasedData(BaseModel):
    member_id: uuid.UUID
    erased_at: datetime | None = None


async def handle_activity_recorded(session: AsyncSession, event: Event) -> None:
    await apply_activity_batch(session, [event])


async def handle_member_erased(session: AsyncSession, event: Event) -> None:
    try:
        data = MemberErasedData.model_validate(event.data)
    except ValidationError as exc:
        log.warning("erasure_event_rejected", event_id=str(event.id), errors=exc.error_count())
        return
    await erase_member(session, data.member_id, data.erased_at or utcnow())


EVENT_HANDLERS: Mapping[str, EventHandler] = {
    ACTIVITY_RECORDED: handle_activity_recorded,
    MEMBER_ERASED: handle_member_erased,
}


async def apply_new_events(session: AsyncSession, events: list[Event]) -> None:
    """The kit's batch handler: the new events of a batch, a run of the same type at a time."""
    for event_type, run in itertools.groupby(events, key=lambda e: e.type):
        if event_type == ACTIVITY_RECORDED:
            await apply_activity_batch(session, list(run))
        elif handler := EVENT_HANDLERS.get(event_type):
            for event in run:
                await handler(session, event)
