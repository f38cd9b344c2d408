"""Memberships as feedback knows them (from members' events: no call to members).

Events may arrive out of order, so each side keeps its latest time and a membership is
current when the last join is newer than the last leave.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of
from services.feedback.moderation.membership.models import CommunityMembership

MEMBERSHIPS = table_of(CommunityMembership)


def _current() -> sa.ColumnElement[bool]:
    m = MEMBERSHIPS
    return sa.or_(m.c.left_at.is_(None), m.c.left_at < m.c.joined_at)


async def record_join(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID, at: datetime) -> None:
    insert = postgresql.insert(MEMBERSHIPS)
    await session.execute(
        insert.values(community_id=community_id, member_id=member_id, joined_at=at).on_conflict_do_update(
            index_elements=[MEMBERSHIPS.c.community_id, MEMBERSHIPS.c.member_id],
            set_={"joined_at": sa.func.greatest(MEMBERSHIPS.c.joined_at, insert.excluded.joined_at)},
        )
    )


async def record_leave(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID, at: datetime) -> None:
    """A leave before any join is remembered with the leave time as its join (not current)."""
    insert = postgresql.insert(MEMBERSHIPS)
    await session.execute(
        insert.values(community_id=community_id, member_id=member_id, joined_at=at, left_at=at).on_conflict_do_update(
            index_elements=[MEMBERSHIPS.c.community_id, MEMBERSHIPS.c.member_id],
            set_={"left_at": sa.func.greatest(sa.func.coalesce(MEMBERSHIPS.c.left_at, at), at)},
        )
    )


async def is_current_member(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> bool:
    m = MEMBERSHIPS
    found = await session.scalar(
        sa.select(sa.literal(True)).where(m.c.community_id == community_id, m.c.member_id == member_id, _current())
    )
    return bool(found)


def current_communities_of(member_id: uuid.UUID) -> sa.Select[tuple[uuid.UUID]]:
    """The communities the member is in now, as a subquery to filter by."""
    m = MEMBERSHIPS
    return sa.select(m.c.community_id).where(m.c.member_id == member_id, _current())


async def lock_membership(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> bool:
    """Lock the member's membership row (present or past): the one lock that serializes changes
    to their strikes and sanctions in this community. False if they were never a member."""
    m = MEMBERSHIPS
    found = await session.scalar(
        sa.select(sa.literal(True))
        .where(m.c.community_id == community_id, m.c.member_id == member_id)
        .with_for_update()
    )
    return bool(found)


async def forget_member(session: AsyncSession, member_id: uuid.UUID) -> None:
    await session.execute(MEMBERSHIPS.delete().where(MEMBERSHIPS.c.member_id == member_id))
