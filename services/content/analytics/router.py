"""`GET /v1/analytics/content`: posts published in a window and posts waiting to be."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.db import SessionDep
from services.common.problems import problem_responses
from services.common.windows import analytics_window
from services.content.access import Analyst
from services.content.analytics import service
from services.content.analytics.schemas import ContentAnalytics

router = APIRouter(tags=["analytics"])


@router.get("/v1/analytics/content", responses=problem_responses(401, 403, 422), response_model_by_alias=True)
async def get_content_analytics(
    session: SessionDep,
    _caller: Analyst,
    start: Annotated[datetime | None, Query(alias="from", description="Start of the window (RFC 3339)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="End of the window, excluded")] = None,
    community_id: uuid.UUID | None = None,
) -> ContentAnalytics:
    """Posts published in `[from, to)` (default: last 30 days), and posts scheduled now."""
    start, end = analytics_window(start, end)
    return await service.content_analytics(session, start, end, community_id)
