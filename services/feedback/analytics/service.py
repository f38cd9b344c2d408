"""Support analytics: every figure is one SQL aggregate over the tickets of the window.

Response and resolution times are stored on the ticket when they happen (in business
minutes when its policy counts business hours), so these are plain aggregates.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.analytics.schemas import AgentBreaches, SupportAnalytics
from services.feedback.tickets.models import PRIORITIES
from services.feedback.tickets.service import RATINGS, TICKETS, UNRESOLVED


def _round(value: object) -> float | None:
    return None if value is None else round(float(value), 2)  # type: ignore[arg-type]


async def support_analytics(
    session: AsyncSession, start: datetime, end: datetime, community_id: uuid.UUID | None
) -> SupportAnalytics:
    t = TICKETS
    window = [t.c.created_at >= start, t.c.created_at < end]
    if community_id is not None:
        window.append(t.c.community_id == community_id)
    within = sa.select(t).where(*window).cte("within")
    w = within.c
    figures = (
        await session.execute(
            sa.select(
                sa.func.count().label("tickets"),
                sa.func.avg(sa.case((w.breached.is_(False), 1.0), else_=0.0)).label("attainment"),
                sa.func.percentile_cont(0.5).within_group(w.first_response_minutes).label("median_first"),
                sa.func.percentile_cont(0.9).within_group(w.first_response_minutes).label("p90_first"),
                sa.func.percentile_cont(0.5).within_group(w.resolution_minutes).label("median_resolution"),
                sa.func.count(w.csat_requested_at).label("surveys"),
            ).select_from(within)
        )
    ).one()
    ratings = (
        await session.execute(
            sa.select(sa.func.avg(RATINGS.c.rating).label("average"), sa.func.count().label("count")).select_from(
                RATINGS.join(within, within.c.id == RATINGS.c.ticket_id)
            )
        )
    ).one()
    backlog = await session.execute(
        sa.select(w.status, w.priority, sa.func.count().label("n"))
        .where(w.status.in_(UNRESOLVED))
        .group_by(w.status, w.priority)
    )
    by_status = dict.fromkeys(UNRESOLVED, 0)
    by_priority = dict.fromkeys(PRIORITIES, 0)
    for row in backlog:
        by_status[row.status] += row.n
        by_priority[row.priority] += row.n
    agents = await session.execute(
        sa.select(w.breached_assignee_id, sa.func.count().label("n"))
        .where(w.breached.is_(True))
        .group_by(w.breached_assignee_id)
        .order_by(sa.func.count().desc(), w.breached_assignee_id)
    )
    return SupportAnalytics(
        from_=start,
        to=end,
        community_id=community_id,
        tickets=figures.tickets,
        sla_attainment=_round(figures.attainment),
        median_first_response_minutes=_round(figures.median_first),
        p90_first_response_minutes=_round(figures.p90_first),
        median_resolution_minutes=_round(figures.median_resolution),
        csat_average=_round(ratings.average),
        csat_response_rate=round(ratings.count / figures.surveys, 4) if figures.surveys else None,
        backlog_by_status=by_status,
        backlog_by_priority=by_priority,
        breaches_by_agent=[AgentBreaches(assignee_id=r.breached_assignee_id, breaches=r.n) for r in agents],
    )
