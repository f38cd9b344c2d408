"""Badge definitions, a member's badges, and badges given by hand."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, Response

from services.common.db import SessionDep, utcnow
from services.common.identity import Caller, Identity, ensure_self_or, require
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.rewards.badges import service
from services.rewards.badges.schemas import (
    BadgeAwardCreate,
    BadgeCreate,
    BadgePage,
    BadgeRead,
    MemberBadgePage,
    MemberBadgeRead,
)
from services.rewards.points.service import ensure_not_erased
from services.rewards.program.service import list_levels

router = APIRouter(tags=["badges"])

Operator = Annotated[Identity, Depends(require("operator"))]
Awarder = Annotated[Identity, Depends(require("operator", scopes=("rewards:write",)))]


@router.post("/v1/badges", status_code=201, responses=problem_responses(401, 403, 409, 422))
async def create_badge(body: BadgeCreate, session: SessionDep, _caller: Operator) -> BadgeRead:
    """Define a badge: earned by `{event_type, count}`, `{streak_days}` or `{level}`, or by hand only."""
    return await service.create_badge(session, body, await list_levels(session), utcnow())


@router.get("/v1/badges", responses=problem_responses(401, 422))
async def list_badges(page: PageDep, session: SessionDep, _caller: Caller) -> BadgePage:
    """Every badge, by code."""
    return await service.list_badges(session, page)


@router.get("/v1/members/{member_id}/badges", responses=problem_responses(401, 403, 404, 422))
async def list_member_badges(
    member_id: uuid.UUID, page: PageDep, session: SessionDep, caller: Caller
) -> MemberBadgePage:
    """The member's badges, newest first, with when each was awarded."""
    ensure_self_or(caller, member_id, "operator", scopes=("read",))
    await ensure_not_erased(session, member_id)
    return await service.member_badges(session, member_id, page)


@router.post(
    "/v1/members/{member_id}/badges",
    status_code=201,
    response_model=MemberBadgeRead,
    responses={
        200: {"model": MemberBadgeRead, "description": "Already awarded"},
        **problem_responses(401, 403, 404, 422),
    },
)
async def award_badge(member_id: uuid.UUID, body: BadgeAwardCreate, session: SessionDep, caller: Awarder) -> Response:
    """Give a member a badge by hand (201); if they already hold it, the award they have (200)."""
    award, created = await service.award_by_hand(session, member_id, body.code, caller.key, utcnow())
    return JSONResponse(award.model_dump(mode="json"), status_code=201 if created else 200)
