"""Support analytics."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.common.db import SessionDep, utcnow
from services.common.identity import Identity, require
from services.common.problems import Unprocessable, problem_responses
from services.feedback.analytics import service
from services.feedback.analytics.schemas import SupportAnalytics

router = APIRouter(tags=["analytics"])

Reader = Annotated[Identity, Depends(require("operator", "analyst", "agent"))]


@router.get("/v1/analytics/support", responses=problem_responses(401, 403, 422), response_model_by_alias=True)
async def get_support_analytics(
    session: SessionDep,
    _caller: Reader,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    community_id: uuid.UUID | None = None,
) -> SupportAnalytics:
    """SLA attainment, response and resolution times, CSAT, backlog, breaches by agent (default: last 30 days)."""
    end = end or utcnow()
    start = start or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("from and to carry a time zone offset (RFC 3339).")
    if start >= end:
        raise Unprocessable("from is before to.", errors=[{"loc": ["query", "from"], "msg": "must be before to"}])
    return await service.support_analytics(session, start, end, community_id)
