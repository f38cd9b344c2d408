"""Export and erasure of what content holds about a member.

Erasure (`member.erased`) drops the member's identity from their votes (the votes stay, so
poll results do not change), deletes their contact permits and budget row, and their
copies of consent and memberships. Posts are written by staff and hold no member data.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.communities.service import CONSENTS, MEMBERS
from services.content.contact.service import BUDGETS, PERMITS
from services.content.polls.service import VOTES
from services.content.privacy.schemas import MemberExport, MembershipExport, PermitExport, VoteExport


async def export_member(session: AsyncSession, member_id: uuid.UUID) -> MemberExport:
    consent = await session.scalar(sa.select(CONSENTS.c.marketing).where(CONSENTS.c.member_id == member_id))
    joined = await session.execute(
        sa.select(MEMBERS.c.community_id, MEMBERS.c.joined_at)
        .where(MEMBERS.c.member_id == member_id)
        .order_by(MEMBERS.c.joined_at)
    )
    votes = await session.execute(
        sa.select(VOTES.c.post_id, VOTES.c.option, VOTES.c.voted_at)
        .where(VOTES.c.member_id == member_id)
        .order_by(VOTES.c.voted_at)
    )
    permits = await session.execute(
        sa.select(PERMITS).where(PERMITS.c.member_id == member_id).order_by(PERMITS.c.granted_at)
    )
    return MemberExport(
        member_id=member_id,
        marketing_consent=consent,
        communities=[MembershipExport.model_validate(r, from_attributes=True) for r in joined],
        votes=[VoteExport.model_validate(r, from_attributes=True) for r in votes],
        contact_permits=[PermitExport.model_validate(r, from_attributes=True) for r in permits],
    )


async def erase_member(session: AsyncSession, member_id: uuid.UUID) -> None:
    """Apply `member.erased` (idempotent: a second run finds nothing left)."""
    await session.execute(VOTES.update().where(VOTES.c.member_id == member_id).values(member_id=None))
    await session.execute(PERMITS.delete().where(PERMITS.c.member_id == member_id))
    await session.execute(BUDGETS.delete().where(BUDGETS.c.member_id == member_id))
    await session.execute(CONSENTS.delete().where(CONSENTS.c.member_id == member_id))
    await session.execute(MEMBERS.delete().where(MEMBERS.c.member_id == member_id))
