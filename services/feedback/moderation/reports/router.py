"""Reports and the review queue."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from services.common.db import SessionDep, utcnow
from services.common.identity import Caller
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.feedback.moderation.policy import Moderator
from services.feedback.moderation.reports import service
from services.feedback.moderation.reports.schemas import (
    ReportCreate,
    ReportPage,
    ReportRead,
    ReportResolve,
    ReportStatus,
)

router = APIRouter(tags=["moderation"])

REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A repeat by the same reporter: nothing changed"},
    **problem_responses(401, 403, 422),
}


@router.post(
    "/v1/reports",
    status_code=201,
    responses=REPORT_RESPONSES,
)
async def create_report(body: ReportCreate, session: SessionDep, caller: Caller, response: Response) -> ReportRead:
    """Report a member or a message (members; partners with `moderation:write` for a member; staff)."""
    report, filed = await service.create_report(session, body, caller, utcnow())
    if not filed:
        response.status_code = 200
    return report


@router.get("/v1/reports", responses=problem_responses(401, 403, 422))
async def list_reports(
    page: PageDep,
    session: SessionDep,
    caller: Caller,
    community_id: uuid.UUID | None = None,
    status: ReportStatus | None = None,
    reported_member_id: uuid.UUID | None = None,
) -> ReportPage:
    """The review queue, oldest first (operators, agents); a member sees the reports they filed."""
    return await service.list_reports(
        session, caller, page, community_id=community_id, status=status, reported_member_id=reported_member_id
    )


@router.get("/v1/reports/{report_id}", responses=problem_responses(401, 403, 404))
async def get_report(report_id: uuid.UUID, session: SessionDep, caller: Caller) -> ReportRead:
    """One report (a reporter sees its status and their own filing only)."""
    return await service.get_report(session, report_id, caller)


@router.post("/v1/reports/{report_id}/resolve", responses=problem_responses(401, 403, 404, 409, 422))
async def resolve_report(
    report_id: uuid.UUID, body: ReportResolve, session: SessionDep, caller: Moderator
) -> ReportRead:
    """Dismiss or uphold (operators, agents); upholding adds a strike and applies the ladder's step."""
    return await service.resolve_report(session, report_id, body, caller, utcnow())
