"""`GET /v1/analytics/rewards`: points issued, redeemed and expired, and redemptions, in a window."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.common.db import SessionDep
from services.common.identity import Identity, require
from services.common.problems import problem_responses
from services.common.windows import analytics_window
from services.rewards.analytics import service
from services.rewards.analytics.schemas import RewardsAnalytics

router = APIRouter(tags=["analytics"])

Analyst = Annotated[Identity, Depends(require("operator", "analyst"))]


@router.get("/v1/analytics/rewards", responses=problem_responses(401, 403, 422), response_model_by_alias=True)
async def get_rewards_analytics(
    session: SessionDep,
    _caller: Analyst,
    start: Annotated[datetime | None, Query(alias="from", description="Start of the window (RFC 3339)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="End of the window, excluded")] = None,
    community_id: Annotated[uuid.UUID | None, Query(description="Narrow `issued` to this community")] = None,
) -> RewardsAnalytics:
    """Points issued, redeemed and expired, and redemptions, in `[from, to)` (default: last 30 days)."""
    start, end = analytics_window(start, end)
    return await service.rewards_analytics(session, start, end, community_id)
