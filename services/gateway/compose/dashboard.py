"""`GET /v1/dashboard`: a community's figures over a window, read from their owning services.

The window is a span of local days in the community's zone (members' analytics count local
days); members gives the zone with the community, and the services that count instants
(rewards, content, feedback) get the window's two local midnights. Every figure is what the
owning service's own endpoint answers for that window, never recomputed here. A part that
fails is left out and its service named in `degraded`; members failing the community itself
is a 503. Complete answers are cached for `QUNYUN_DASHBOARD_CACHE_SECONDS` per community and
window; degraded ones never are, so a recovered service shows at once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.common.db import rfc3339, utcnow
from services.common.problems import Unprocessable
from services.common.settings import ServiceName
from services.content.analytics.schemas import ContentAnalytics
from services.content.policy.schemas import BestTimes
from services.feedback.analytics.schemas import SupportAnalytics
from services.gateway.auth.cache import TTLCache
from services.gateway.compose.overview import optional_part, required_part
from services.gateway.compose.parts import Part, Upstream
from services.gateway.compose.schemas import (
    ContentFigures,
    DashboardRead,
    DashboardWindow,
    EngagementSummary,
    SupportFigures,
)
from services.members.analytics.schemas import ChurnRiskRead, EngagementRead, HeatmapRead, RetentionRead
from services.members.communities.schemas import CommunityRead
from services.rewards.analytics.schemas import RewardsAnalytics

DEFAULT_DAYS = 30
MAX_DAYS = 366
RETENTION_WEEKS = 8
CHURN_RISKS_SHOWN = 10
BEST_TIMES_SHOWN = 3

DashboardKey = tuple[uuid.UUID, date | None, date | None]


class DashboardCache(TTLCache[DashboardKey, DashboardRead]):
    """Complete dashboards per (community, from, to), for a few seconds."""


def dashboard_window(community: CommunityRead, start: date | None, end: date | None) -> DashboardWindow:
    """`to` defaults to today in the community's zone, `from` to 30 days ending there."""
    zone = ZoneInfo(community.timezone)
    end = end or utcnow().astimezone(zone).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise Unprocessable("`from` must not be after `to`.", errors=[{"loc": ["query", "from"], "msg": "after to"}])
    if (end - start).days + 1 > MAX_DAYS:
        raise Unprocessable(
            f"The window may span at most {MAX_DAYS} days.",
            errors=[{"loc": ["query", "from"], "msg": f"window longer than {MAX_DAYS} days"}],
        )
    try:
        starts_at = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
        ends_at = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError as exc:  # the first or last days of the calendar
        raise Unprocessable(
            "The window lies outside the calendar.", errors=[{"loc": ["query", "from"], "msg": "out of range"}]
        ) from exc
    return DashboardWindow(from_=start, to=end, timezone=community.timezone, starts_at=starts_at, ends_at=ends_at)


def dashboard_parts(community_id: uuid.UUID, window: DashboardWindow) -> dict[str, Part]:
    community = str(community_id)
    last_day = window.to.isoformat()
    days = {"community_id": community, "from": window.from_.isoformat(), "to": last_day}
    instants = {"community_id": community, "from": rfc3339(window.starts_at), "to": rfc3339(window.ends_at)}
    return {
        "engagement": Part("members", "/v1/analytics/engagement", days),
        "retention": Part(
            "members",
            "/v1/analytics/retention",
            {"community_id": community, "weeks": str(RETENTION_WEEKS), "as_of": last_day},
        ),
        "churn_risk": Part(
            "members",
            "/v1/analytics/churn-risk",
            {"community_id": community, "limit": str(CHURN_RISKS_SHOWN), "as_of": last_day},
        ),
        "heatmap": Part("members", "/v1/analytics/activity-heatmap", days),
        "best_times": Part("content", f"/v1/communities/{community}/best-times", {"count": str(BEST_TIMES_SHOWN)}),
        "rewards": Part("rewards", "/v1/analytics/rewards", instants),
        "content": Part("content", "/v1/analytics/content", instants),
        "support": Part("feedback", "/v1/analytics/support", instants),
    }


def engagement_summary(engagement: EngagementRead | None) -> EngagementSummary | None:
    if engagement is None:
        return None
    last = engagement.days[-1] if engagement.days else None
    return EngagementSummary(
        dau=last.dau if last else 0,
        wau=last.wau if last else 0,
        mau=last.mau if last else 0,
        stickiness=last.stickiness if last else 0.0,
        days=engagement.days,
    )


async def community_dashboard(
    upstream: Upstream, community_id: uuid.UUID, start: date | None, end: date | None, budget: float
) -> DashboardRead:
    first = await upstream.gather({"community": Part("members", f"/v1/communities/{community_id}")}, budget)
    community = CommunityRead.model_validate(required_part(first, "community", "community"))
    window = dashboard_window(community, start, end)
    results = await upstream.gather(dashboard_parts(community_id, window), budget)
    degraded: set[ServiceName] = set()
    engagement = optional_part(results, "engagement", EngagementRead, degraded)
    retention = optional_part(results, "retention", RetentionRead, degraded)
    churn = optional_part(results, "churn_risk", ChurnRiskRead, degraded)
    heatmap = optional_part(results, "heatmap", HeatmapRead, degraded)
    best = optional_part(results, "best_times", BestTimes, degraded)
    rewards = optional_part(results, "rewards", RewardsAnalytics, degraded)
    content = optional_part(results, "content", ContentAnalytics, degraded)
    support = optional_part(results, "support", SupportAnalytics, degraded)
    return DashboardRead(
        community=community,
        window=window,
        engagement=engagement_summary(engagement),
        retention=retention.cohorts if retention else None,
        churn_risk=churn.items if churn else None,
        heatmap=heatmap.counts if heatmap else None,
        best_times=best.items if best else None,
        points=rewards.points if rewards else None,
        redemptions=rewards.redemptions if rewards else None,
        content=ContentFigures(
            published=content.published, scheduled=content.scheduled, published_by_kind=content.published_by_kind
        )
        if content
        else None,
        support=SupportFigures(
            tickets=support.tickets,
            sla_attainment=support.sla_attainment,
            median_first_response_minutes=support.median_first_response_minutes,
            csat_average=support.csat_average,
            backlog_by_status=support.backlog_by_status,
        )
        if support
        else None,
        degraded=sorted(degraded),
        generated_at=utcnow(),
    )


async def cached_dashboard(
    cache: DashboardCache,
    upstream: Upstream,
    community_id: uuid.UUID,
    start: date | None,
    end: date | None,
    budget: float,
) -> DashboardRead:
    """The community's dashboard, loaded once however many readers miss it together; a
    degraded answer is shared with them but not kept."""
    key = (community_id, start, end)
    return await cache.get_or_load(
        key, lambda: community_dashboard(upstream, community_id, start, end, budget), keep=lambda a: not a.degraded
    )
