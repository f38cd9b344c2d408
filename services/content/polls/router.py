"""`/v1/posts/{id}/votes` and `/results`: polls."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.common.db import SessionDep, utcnow
from services.common.identity import Caller
from services.common.problems import Forbidden, problem_responses
from services.content.polls import service
from services.content.polls.schemas import PollResults, VoteCreate

router = APIRouter(prefix="/v1/posts/{post_id}", tags=["polls"])


@router.post("/votes", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 403, 404, 422))
async def create_vote(
    post_id: uuid.UUID, data: VoteCreate, session: SessionDep, caller: Caller, response: Response
) -> PollResults:
    """Vote in a published poll (members of its community, once: a repeat changes nothing, 200)."""
    if caller.kind != "member" or caller.member_id is None:
        raise Forbidden("Only members vote.")
    created, poll = await service.vote(session, post_id, caller.member_id, data.option, utcnow())
    if not created:
        response.status_code = status.HTTP_200_OK
    return await service.results(session, poll, caller.member_id)


@router.get("/results", responses=problem_responses(401, 403, 404))
async def get_results(post_id: uuid.UUID, session: SessionDep, caller: Caller) -> PollResults:
    """Live counts per option (members of the community; staff; partners with `read`)."""
    poll = await service.published_poll(session, post_id)
    if caller.kind == "member" and caller.member_id is not None:
        await service.ensure_member(session, poll.community_id, caller.member_id)
        return await service.results(session, poll, caller.member_id)
    if not (caller.has_role("operator", "reviewer", "analyst") or caller.has_scope("read")):
        raise Forbidden("Your role does not allow this.")
    return await service.results(session, poll, None)
