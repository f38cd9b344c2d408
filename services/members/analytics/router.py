"""`/v1/analytics`: engagement, retention, churn risk and the activity heat map (operator, analyst)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.db import SessionDep
from services.common.problems import problem_responses
from services.members.access import Analyst
from services.members.analytics import service
from services.members.analytics.schemas import ChurnRiskRead, EngagementRead, HeatmapRead, RetentionRead

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

CommunityQuery = Annotated[uuid.UUID, Query(description="The community to analyse")]
FromQuery = Annotated[date | None, Query(alias="from", description="First local day (default: see `to`)")]
ToQuery = Annotated[date | None, Query(description="Last local day (default: today in the community's zone)")]
AsOfQuery = Annotated[date | None, Query(description="Analyse as if today were this local day")]


@router.get(
    "/engagement",
    response_model=EngagementRead,
    response_model_by_alias=True,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_engagement(
    community_id: CommunityQuery, session: SessionDep, _caller: Analyst, from_: FromQuery = None, to: ToQuery = None
) -> EngagementRead:
    """DAU, WAU, MAU and stickiness per local day (default: the last 30 days; at most 366)."""
    return await service.engagement(session, community_id, from_, to)


@router.get("/retention", response_model=RetentionRead, responses=problem_responses(401, 403, 404, 422))
async def get_retention(
    community_id: CommunityQuery,
    session: SessionDep,
    _caller: Analyst,
    weeks: Annotated[int, Query(ge=1, le=52, description="How many weekly cohorts")] = 8,
    as_of: AsOfQuery = None,
) -> RetentionRead:
    """Weekly join cohorts and the share of each still active week after week."""
    return await service.retention(session, community_id, weeks, as_of)


@router.get("/churn-risk", response_model=ChurnRiskRead, responses=problem_responses(401, 403, 404, 422))
async def get_churn_risk(
    community_id: CommunityQuery,
    session: SessionDep,
    _caller: Analyst,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    window_days: Annotated[int, Query(ge=1, le=90, description="Length of each compared window")] = 14,
    as_of: AsOfQuery = None,
) -> ChurnRiskRead:
    """Members whose activity fell most: the last `window_days` against the same span before."""
    return await service.churn_risk(session, community_id, limit, window_days, as_of)


@router.get(
    "/activity-heatmap",
    response_model=HeatmapRead,
    response_model_by_alias=True,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_activity_heatmap(
    community_id: CommunityQuery, session: SessionDep, _caller: Analyst, from_: FromQuery = None, to: ToQuery = None
) -> HeatmapRead:
    """Event counts by local weekday (Monday first) x hour (default: the last 12 weeks)."""
    return await service.activity_heatmap(session, community_id, from_, to)
