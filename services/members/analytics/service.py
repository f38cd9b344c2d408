"""Analytics over the rollups (never raw events): one query per answer.

Days are local days in the community's zone, as recorded at ingest.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of, utcnow
from services.common.problems import Unprocessable
from services.members.activity.models import ActivityDaily, ActivityHourly
from services.members.analytics.schemas import (
    ChurnRiskMember,
    ChurnRiskRead,
    EngagementDay,
    EngagementRead,
    HeatmapRead,
    RetentionCohort,
    RetentionRead,
)
from services.members.communities.models import Community
from services.members.communities.service import get_community
from services.members.memberships.models import Membership
from services.members.profiles.models import Member, last_active_at

daily = table_of(ActivityDaily)
hourly = table_of(ActivityHourly)
memberships = table_of(Membership)
members = table_of(Member)

MAX_RANGE_DAYS = 366
DEFAULT_ENGAGEMENT_DAYS = 30
DEFAULT_HEATMAP_DAYS = 84


def local_today(community: Community) -> date:
    return utcnow().astimezone(ZoneInfo(community.timezone)).date()


def date_range(community: Community, start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    """`to` defaults to today (local), `from` to `default_days` before it; at most 366 days."""
    end = end or local_today(community)
    start = start or end - timedelta(days=default_days - 1)
    if start > end:
        raise Unprocessable("`from` must not be after `to`.", errors=[{"loc": ["query", "from"], "msg": "after to"}])
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise Unprocessable(
            f"The range may span at most {MAX_RANGE_DAYS} days.",
            errors=[{"loc": ["query", "from"], "msg": f"range longer than {MAX_RANGE_DAYS} days"}],
        )
    return start, end


def weeks_since(day: sa.ColumnElement[date], origin: date) -> sa.ColumnElement[int]:
    """Whole weeks from `origin` to the date column `day` (for days on or after `origin`)."""
    return sa.cast(day - sa.literal(origin, sa.Date), sa.Integer) // 7  # date - date: a number of days


async def engagement(
    session: AsyncSession, community_id: uuid.UUID, start: date | None, end: date | None
) -> EngagementRead:
    """DAU, WAU (7 days), MAU (30 days) and stickiness per day, from the daily rollup."""
    community = await get_community(session, community_id)
    start, end = date_range(community, start, end, DEFAULT_ENGAGEMENT_DAYS)
    # The days of the range, with their windows.
    offsets = sa.func.generate_series(0, (end - start).days).table_valued("n").render_derived()
    day = sa.literal(start, sa.Date) + offsets.c.n
    days = sa.select(day.label("day"), (day - 6).label("week_from"), (day - 29).label("month_from")).cte("days")
    in_window = sa.and_(
        daily.c.community_id == community_id,
        daily.c.local_date >= days.c.month_from,
        daily.c.local_date <= days.c.day,
    )
    query = (
        sa.select(
            days.c.day,
            sa.func.count(sa.distinct(sa.case((daily.c.local_date == days.c.day, daily.c.member_id)))).label("dau"),
            sa.func.count(sa.distinct(sa.case((daily.c.local_date >= days.c.week_from, daily.c.member_id)))).label(
                "wau"
            ),
            sa.func.count(sa.distinct(daily.c.member_id)).label("mau"),
        )
        .select_from(days.outerjoin(daily, in_window))
        .group_by(days.c.day)
        .order_by(days.c.day)
    )
    rows = (await session.execute(query)).all()
    return EngagementRead(
        community_id=community.id,
        timezone=community.timezone,
        from_=start,
        to=end,
        days=[
            EngagementDay(
                day=row.day,
                dau=row.dau,
                wau=row.wau,
                mau=row.mau,
                stickiness=round(row.dau / row.mau, 4) if row.mau else 0.0,
            )
            for row in rows
        ],
    )


async def retention(session: AsyncSession, community_id: uuid.UUID, weeks: int, as_of: date | None) -> RetentionRead:
    """Weekly join cohorts (local Monday weeks) and the share of each active in later weeks."""
    community = await get_community(session, community_id)
    today = as_of or local_today(community)
    first = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    cohort = weeks_since(memberships.c.joined_date, first).label("cohort")
    joined = sa.and_(
        memberships.c.community_id == community_id,
        memberships.c.joined_date >= first,
        memberships.c.joined_date <= today,
    )
    sizes = await session.execute(sa.select(cohort, sa.func.count()).where(joined).group_by(cohort))
    size_of = {row[0]: row[1] for row in sizes}
    week = weeks_since(daily.c.local_date, first).label("week")
    active = await session.execute(
        sa.select(cohort, week, sa.func.count(sa.distinct(daily.c.member_id)))
        .select_from(memberships.join(daily, daily.c.member_id == memberships.c.member_id))
        .where(
            joined,
            daily.c.community_id == community_id,
            daily.c.local_date >= memberships.c.joined_date,
            daily.c.local_date <= today,
        )
        .group_by(cohort, week)
    )
    active_in = {(row[0], row[1]): row[2] for row in active}
    cohorts = []
    for index in range(weeks):
        size = size_of.get(index, 0)
        retained = [
            round(active_in.get((index, index + offset), 0) / size, 4) if size else 0.0
            for offset in range(weeks - index)
        ]
        cohorts.append(RetentionCohort(cohort_start=first + timedelta(weeks=index), size=size, retained=retained))
    return RetentionRead(community_id=community.id, timezone=community.timezone, weeks=weeks, cohorts=cohorts)


async def churn_risk(
    session: AsyncSession, community_id: uuid.UUID, limit: int, window_days: int, as_of: date | None
) -> ChurnRiskRead:
    """Members whose events fell most: the last `window_days` local days against the ones before."""
    community = await get_community(session, community_id)
    today = as_of or local_today(community)
    zone = ZoneInfo(community.timezone)
    recent_from = today - timedelta(days=window_days - 1)
    previous_from = recent_from - timedelta(days=window_days)
    recent = sa.func.sum(sa.case((daily.c.local_date >= recent_from, daily.c.events), else_=0))
    previous = sa.func.sum(sa.case((daily.c.local_date < recent_from, daily.c.events), else_=0))
    totals = (
        sa.select(daily.c.member_id, recent.label("recent"), previous.label("previous"))
        .where(
            daily.c.community_id == community_id,
            daily.c.local_date >= previous_from,
            daily.c.local_date <= today,
        )
        .group_by(daily.c.member_id)
        .having(previous > recent)
        .subquery()
    )
    score = (totals.c.previous - totals.c.recent) * 1.0 / totals.c.previous
    query = (
        sa.select(
            totals.c.member_id,
            totals.c.recent,
            totals.c.previous,
            last_active_at(members.c.id).label("last_active_at"),
        )
        .join(members, members.c.id == totals.c.member_id)
        .where(members.c.erased_at.is_(None))
        .order_by(score.desc(), (totals.c.previous - totals.c.recent).desc(), totals.c.member_id)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return ChurnRiskRead(
        community_id=community.id,
        window_days=window_days,
        recent_from=recent_from,
        previous_from=previous_from,
        as_of=today,
        items=[
            ChurnRiskMember(
                member_id=row.member_id,
                last_active_at=row.last_active_at,
                recent=int(row.recent),
                previous=int(row.previous),
                score=round((row.previous - row.recent) / row.previous, 4),
                reasons=churn_reasons(
                    int(row.recent), int(row.previous), window_days, _local_day(row.last_active_at, zone), today
                ),
            )
            for row in rows
        ],
    )


def _local_day(moment: datetime | None, zone: ZoneInfo) -> date | None:
    return None if moment is None else moment.astimezone(zone).date()


def churn_reasons(recent: int, previous: int, window_days: int, last_active_day: date | None, today: date) -> list[str]:
    """The churn-risk figures said in words (what the dashboard shows next to each member)."""
    if recent == 0:
        reasons = [f"no activity in the last {window_days} days (was {previous} events the {window_days} before)"]
    else:
        drop = round(100 * (previous - recent) / previous)
        reasons = [f"activity down {drop}% ({previous} to {recent} events per {window_days} days)"]
    if last_active_day is not None:
        idle = (today - last_active_day).days
        if idle >= 7:
            reasons.append(f"last active {idle} days ago")
    return reasons


async def activity_heatmap(
    session: AsyncSession, community_id: uuid.UUID, start: date | None, end: date | None
) -> HeatmapRead:
    """Events per local weekday (Monday first) and hour, from the hourly rollup."""
    community = await get_community(session, community_id)
    start, end = date_range(community, start, end, DEFAULT_HEATMAP_DAYS)
    rows = await session.execute(
        sa.select(hourly.c.weekday, hourly.c.hour, sa.func.sum(hourly.c.events))
        .where(hourly.c.community_id == community_id, hourly.c.local_date.between(start, end))
        .group_by(hourly.c.weekday, hourly.c.hour)
    )
    counts = [[0] * 24 for _ in range(7)]
    for weekday, hour, events in rows:
        counts[weekday][hour] = int(events)
    return HeatmapRead(community_id=community.id, timezone=community.timezone, from_=start, to=end, counts=counts)
