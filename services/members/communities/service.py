"""Community rules: create, list, read, change."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of, utcnow
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import NotFound
from services.members.communities.models import Community
from services.members.communities.schemas import CommunityCreate, CommunityUpdate

communities = table_of(Community)


class CommunityNotFound(NotFound):
    slug, title = "community-not-found", "Community not found"


async def create_community(session: AsyncSession, data: CommunityCreate) -> Community:
    community = Community(name=data.name, description=data.description, timezone=data.timezone)
    session.add(community)
    await session.flush()
    return community


async def get_community(session: AsyncSession, community_id: uuid.UUID, *, for_update: bool = False) -> Community:
    query = sa.select(Community).where(communities.c.id == community_id)
    if for_update:
        query = query.with_for_update()
    community = (await session.execute(query)).scalar_one_or_none()
    if community is None:
        raise CommunityNotFound("No such community.")
    return community


async def list_communities(session: AsyncSession, page: PageParams) -> tuple[list[Community], str | None]:
    """Newest first, keyset on (created_at, id)."""
    order = (communities.c.created_at, communities.c.id)
    query = sa.select(Community).order_by(*(c.desc() for c in order)).limit(page.limit + 1)
    after = keyset_after(order, page.cursor, descending=True)
    if after is not None:
        query = query.where(after)
    rows = list((await session.execute(query)).scalars())
    return paginate_rows(rows, page.limit, lambda c: (c.created_at.isoformat(), str(c.id)))


async def update_community(session: AsyncSession, community_id: uuid.UUID, data: CommunityUpdate) -> Community:
    """Changing the time zone affects days counted from now on; past rollups keep their days."""
    community = await get_community(session, community_id, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(community, field, value)
    if changes:
        community.updated_at = utcnow()
        await session.flush()
    return community


async def community_zones(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Time zone of each existing community among `ids`, in one query."""
    if not ids:
        return {}
    rows = await session.execute(sa.select(communities.c.id, communities.c.timezone).where(communities.c.id.in_(ids)))
    return {row.id: row.timezone for row in rows}
