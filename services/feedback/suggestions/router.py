"""The suggestion board."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends

from services.common.contracts.feedback import SuggestionStatus
from services.common.db import SessionDep, utcnow
from services.common.identity import Caller, Identity, require
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.feedback.suggestions import service
from services.feedback.suggestions.schemas import SuggestionCreate, SuggestionPage, SuggestionRead, SuggestionUpdate

router = APIRouter(tags=["suggestions"])

Operator = Annotated[Identity, Depends(require("operator"))]


@router.post("/v1/suggestions", status_code=201, responses=problem_responses(401, 403, 422))
async def create_suggestion(body: SuggestionCreate, session: SessionDep, caller: Caller) -> SuggestionRead:
    """Post a suggestion to a community's board (members)."""
    return await service.create_suggestion(session, body, caller, utcnow())


@router.get("/v1/suggestions", responses=problem_responses(401, 422))
async def list_suggestions(
    page: PageDep,
    session: SessionDep,
    caller: Caller,
    community_id: uuid.UUID | None = None,
    status: SuggestionStatus | None = None,
    sort: Literal["top", "new"] = "new",
) -> SuggestionPage:
    """The board: `top` by score, `new` newest first."""
    return await service.list_suggestions(session, caller, page, community_id=community_id, status=status, sort=sort)


@router.get("/v1/suggestions/{suggestion_id}", responses=problem_responses(401, 404))
async def get_suggestion(suggestion_id: uuid.UUID, session: SessionDep, caller: Caller) -> SuggestionRead:
    """One suggestion with its votes and score."""
    return await service.get_suggestion(session, suggestion_id, caller)


@router.post("/v1/suggestions/{suggestion_id}/votes", responses=problem_responses(401, 403, 404))
async def vote_suggestion(suggestion_id: uuid.UUID, session: SessionDep, caller: Caller) -> SuggestionRead:
    """Vote for it (members; a repeat changes nothing)."""
    return await service.vote(session, suggestion_id, caller, utcnow())


@router.delete("/v1/suggestions/{suggestion_id}/votes", responses=problem_responses(401, 403, 404))
async def unvote_suggestion(suggestion_id: uuid.UUID, session: SessionDep, caller: Caller) -> SuggestionRead:
    """Take the vote back (members)."""
    return await service.unvote(session, suggestion_id, caller)


@router.patch("/v1/suggestions/{suggestion_id}", responses=problem_responses(401, 403, 404, 422))
async def update_suggestion(
    suggestion_id: uuid.UUID, body: SuggestionUpdate, session: SessionDep, caller: Operator
) -> SuggestionRead:
    """Move it to planned, in progress, done or declined, with a public response (operators)."""
    return await service.update_suggestion(session, suggestion_id, body, caller, utcnow())
