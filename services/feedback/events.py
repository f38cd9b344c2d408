"""Events the feedback service emits and the handlers for those it consumes.

Consumed (its line in `services.common.contracts.subscriptions`): `rewards.level_changed`
(the voter's level weighs their votes: event-carried state), `member.joined_community` and
`member.left_community` (who may read a community's rules, report in it, be reported) and
`member.erased` (pseudonymization). Emitted (contracts in `services.common.contracts.feedback`), in the
transaction of the change: `feedback.ticket_created`, `feedback.ticket_status_changed`,
`feedback.ticket_commented` (public comments only: internal notes are never announced),
`feedback.sla_breached` (the SLA job), `feedback.csat_requested`, `feedback.csat_received`,
`feedback.suggestion_created`, `feedback.suggestion_status_changed`,
`feedback.suggestion_completed`, `moderation.report_created`, `moderation.report_resolved`,
`moderation.sanction_applied`, `moderation.sanction_lifted` (the expiry job too). No payload
carries a ticket's or comment's text, nor a report's reporter.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.erasure import FeedbackMemberErased
from services.common.contracts.members import MemberErased, MemberJoinedCommunity, MemberLeftCommunity
from services.common.contracts.rewards import LevelChanged
from services.common.db import utcnow
from services.common.events import Event, EventHandlers, emit
from services.feedback.moderation.membership import service as memberships
from services.feedback.privacy.service import erase_member
from services.feedback.suggestions.service import apply_level_changed


async def handle_level_changed(session: AsyncSession, event: Event[LevelChanged]) -> None:
    await apply_level_changed(session, event.data)


async def handle_member_erased(session: AsyncSession, event: Event[MemberErased]) -> None:
    await erase_member(session, event.data.member_id, event.data.erased_at)
    # The confirmation the gateway records (GET /v1/members/{id}/erasure), in the erasure's transaction.
    await emit(session, FeedbackMemberErased(member_id=event.data.member_id, erased_at=utcnow()))


async def handle_member_joined(session: AsyncSession, event: Event[MemberJoinedCommunity]) -> None:
    await memberships.record_join(session, event.data.community_id, event.data.member_id, event.data.joined_at)


async def handle_member_left(session: AsyncSession, event: Event[MemberLeftCommunity]) -> None:
    await memberships.record_leave(session, event.data.community_id, event.data.member_id, event.data.left_at)


EVENT_HANDLERS: EventHandlers = {
    LevelChanged: handle_level_changed,
    MemberJoinedCommunity: handle_member_joined,
    MemberLeftCommunity: handle_member_left,
    MemberErased: handle_member_erased,
}
