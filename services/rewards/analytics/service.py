"""Rewards analytics: each figure is one aggregate over the ledger or the redemptions of a window.

The ledger is append-only and every entry names its reason (`earned:<rule>`, `adjustment`,
`redemption`, `refund`, `expired`), so the points that flowed in a window are sums of
entries by reason; nothing is derived from balances.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards.analytics.schemas import PointsFlow, RedemptionCounts, RewardsAnalytics
from services.rewards.catalog.repository import REDEMPTIONS
from services.rewards.points.repository import ENTRIES


def _sum(condition: sa.ColumnElement[bool], value: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)


async def points_flow(
    session: AsyncSession, start: datetime, end: datetime, community_id: uuid.UUID | None
) -> PointsFlow:
    e = ENTRIES.c
    earned = e.reason.startswith("earned:")
    issued = sa.or_(earned, sa.and_(e.reason == "adjustment", e.delta > 0))
    if community_id is not None:
        issued = sa.and_(earned, e.community_id == community_id)
    row = (
        await session.execute(
            sa.select(
                _sum(issued, e.delta).label("issued"),
                _sum(e.reason == "redemption", -e.delta).label("spent"),
                _sum(e.reason == "refund", e.delta).label("refunded"),
                _sum(e.reason == "expired", -e.delta).label("expired"),
            ).where(e.created_at >= start, e.created_at < end)
        )
    ).one()
    return PointsFlow(issued=row.issued, redeemed=row.spent - row.refunded, expired=row.expired)


async def redemption_counts(session: AsyncSession, start: datetime, end: datetime) -> RedemptionCounts:
    r = REDEMPTIONS.c
    row = (
        await session.execute(
            sa.select(
                sa.func.count().label("created"),
                _sum(r.status == "pending", sa.literal(1)).label("pending"),
                _sum(r.status == "fulfilled", sa.literal(1)).label("fulfilled"),
                _sum(r.status == "cancelled", sa.literal(1)).label("cancelled"),
                sa.func.coalesce(sa.func.sum(r.cost), 0).label("points"),
            ).where(r.created_at >= start, r.created_at < end)
        )
    ).one()
    return RedemptionCounts(
        created=row.created, pending=row.pending, fulfilled=row.fulfilled, cancelled=row.cancelled, points=row.points
    )


async def rewards_analytics(
    session: AsyncSession, start: datetime, end: datetime, community_id: uuid.UUID | None
) -> RewardsAnalytics:
    return RewardsAnalytics(
        from_=start,
        to=end,
        community_id=community_id,
        points=await points_flow(session, start, end, community_id),
        redemptions=await redemption_counts(session, start, end),
    )
