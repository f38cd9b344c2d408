"""Joining and leaving communities."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.members import MemberJoinedCommunity, MemberLeftCommunity
from services.common.db import table_of, utcnow
from services.common.events import emit
from services.common.problems import NotFound
from services.members.communities.service import get_community
from services.members.memberships.models import Membership
from services.members.profiles.service import get_member

memberships = table_of(Membership)


class NotAMember(NotFound):
    slug, title = "membership-not-found", "Not a member of this community"


async def join_community(
    session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID, joined_at: datetime | None = None
) -> tuple[Membership, bool]:
    """Join (or rejoin after leaving): (membership, created). Joining again changes nothing."""
    community = await get_community(session, community_id)
    await get_member(session, member_id)
    now = joined_at or utcnow()
    values = {
        "community_id": community_id,
        "member_id": member_id,
        "joined_at": now,
        "joined_date": now.astimezone(ZoneInfo(community.timezone)).date(),
        "left_at": None,
    }
    # The primary key decides under concurrency: one INSERT wins, the others see its row.
    inserted = await session.execute(
        postgresql.insert(memberships).values(values).on_conflict_do_nothing().returning(memberships.c.member_id)
    )
    created = inserted.scalar_one_or_none() is not None
    if not created:
        # A former member coming back: active again, first join date kept for cohorts.
        rejoined = await session.execute(
            memberships.update()
            .where(_key(community_id, member_id), memberships.c.left_at.is_not(None))
            .values(left_at=None)
            .returning(memberships.c.member_id)
        )
        created = rejoined.scalar_one_or_none() is not None
    row = (await session.execute(sa.select(Membership).where(_key(community_id, member_id)))).scalar_one()
    if created:
        await emit(session, MemberJoinedCommunity(member_id=member_id, community_id=community_id, joined_at=now))
    return row, created


async def leave_community(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> datetime:
    now = utcnow()
    left = await session.execute(
        memberships.update()
        .where(_key(community_id, member_id), memberships.c.left_at.is_(None))
        .values(left_at=now)
        .returning(memberships.c.member_id)
    )
    if left.scalar_one_or_none() is None:
        raise NotAMember("This member does not belong to this community.")
    await emit(session, MemberLeftCommunity(member_id=member_id, community_id=community_id, left_at=now))
    return now


def _key(community_id: uuid.UUID, member_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return sa.and_(memberships.c.community_id == community_id, memberships.c.member_id == member_id)
