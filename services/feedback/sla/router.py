"""SLA policies and community business hours."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.common.db import SessionDep, utcnow
from services.common.identity import Identity, require
from services.common.problems import NotFound, problem_responses
from services.feedback.sla import service
from services.feedback.sla.schemas import BusinessHoursBody, SlaPolicies

router = APIRouter(tags=["sla"])

Operator = Annotated[Identity, Depends(require("operator"))]
SupportReader = Annotated[Identity, Depends(require("operator", "agent"))]


@router.get("/v1/sla-policies", responses=problem_responses(401, 403))
async def get_sla_policies(session: SessionDep, _caller: SupportReader) -> SlaPolicies:
    """Targets per priority (defaults until an operator sets them)."""
    return await service.list_policies(session)


@router.put("/v1/sla-policies", responses=problem_responses(401, 403, 422))
async def put_sla_policies(body: SlaPolicies, session: SessionDep, _caller: Operator) -> SlaPolicies:
    """Set targets for some or all priorities; new tickets and priority changes use them."""
    return await service.replace_policies(session, body, utcnow())


@router.get("/v1/communities/{community_id}/business-hours", responses=problem_responses(401, 403, 404))
async def get_business_hours(community_id: uuid.UUID, session: SessionDep, _caller: SupportReader) -> BusinessHoursBody:
    """The community's support hours (404 while it has none: SLA clocks then run 24/7)."""
    hours = await service.get_business_hours(session, community_id)
    if hours is None:
        raise NotFound("This community has no business hours.")
    return hours


@router.put("/v1/communities/{community_id}/business-hours", responses=problem_responses(401, 403, 422))
async def put_business_hours(
    community_id: uuid.UUID, body: BusinessHoursBody, session: SessionDep, _caller: Operator
) -> BusinessHoursBody:
    """Set the community's support hours (used by policies with `business_hours_only`)."""
    return await service.put_business_hours(session, community_id, body, utcnow())
