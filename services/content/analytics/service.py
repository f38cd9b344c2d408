"""Content analytics: counts of posts published in a window and of posts waiting to be."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.analytics.schemas import ContentAnalytics
from services.content.posts.service import POSTS


async def content_analytics(
    session: AsyncSession, start: datetime, end: datetime, community_id: uuid.UUID | None
) -> ContentAnalytics:
    p = POSTS.c
    scope = [p.community_id == community_id] if community_id is not None else []
    published = await session.execute(
        sa.select(p.kind, sa.func.count())
        .where(*scope, p.status == "published", p.published_at >= start, p.published_at < end)
        .group_by(p.kind)
    )
    by_kind: dict[str, int] = {row[0]: row[1] for row in published}
    scheduled = await session.scalar(sa.select(sa.func.count()).where(*scope, p.status == "scheduled"))
    return ContentAnalytics(
        from_=start,
        to=end,
        community_id=community_id,
        published=sum(by_kind.values()),
        published_by_kind=dict(sorted(by_kind.items())),
        scheduled=scheduled or 0,
    )
