"""Join and leave communities: operators and partners for anyone, a member for itself."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from fastapi import APIRouter, Response, status

from services.common.db import SessionDep, table_of
from services.common.identity import ensure_self_or
from services.common.problems import Forbidden, problem_responses
from services.members.access import READ_SCOPES, WRITE_SCOPES, SelfOrReader, SelfOrWriter
from services.members.memberships import service
from services.members.memberships.models import Membership
from services.members.memberships.schemas import MembershipCreate, MembershipRead
from services.members.profiles.service import get_member

router = APIRouter(tags=["memberships"])
memberships = table_of(Membership)


@router.post(
    "/v1/communities/{community_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MembershipRead,
    responses={
        200: {"model": MembershipRead, "description": "Already a member"},
        **problem_responses(401, 403, 404, 422),
    },
)
async def join_community(
    community_id: uuid.UUID, data: MembershipCreate, session: SessionDep, caller: SelfOrWriter, response: Response
) -> MembershipRead:
    """Add a member to a community (201; 200 with the membership if already in it)."""
    ensure_self_or(caller, data.member_id, "operator", scopes=WRITE_SCOPES)
    if caller.kind == "member" and data.joined_at is not None:
        raise Forbidden("Members cannot backdate joining.")
    membership, created = await service.join_community(session, community_id, data.member_id, data.joined_at)
    if not created:
        response.status_code = status.HTTP_200_OK
    return MembershipRead.model_validate(membership)


@router.delete(
    "/v1/communities/{community_id}/members/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def leave_community(
    community_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, caller: SelfOrWriter
) -> Response:
    """Remove a member from a community."""
    ensure_self_or(caller, member_id, "operator", scopes=WRITE_SCOPES)
    await service.leave_community(session, community_id, member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/members/{member_id}/communities",
    response_model=list[MembershipRead],
    responses=problem_responses(401, 403, 404),
)
async def list_member_communities(
    member_id: uuid.UUID, session: SessionDep, caller: SelfOrReader
) -> list[MembershipRead]:
    """The communities a member currently belongs to."""
    ensure_self_or(caller, member_id, "operator", "analyst", scopes=READ_SCOPES)
    await get_member(session, member_id)
    rows = await session.execute(
        sa.select(Membership)
        .where(memberships.c.member_id == member_id, memberships.c.left_at.is_(None))
        .order_by(memberships.c.joined_at)
    )
    return [MembershipRead.model_validate(m) for m in rows.scalars()]
