"""`/v1/communities`: operators create and change communities; readers list them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from services.common.db import SessionDep
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.members.access import CommunityReader, CommunityWriter
from services.members.communities import service
from services.members.communities.schemas import CommunityCreate, CommunityPage, CommunityRead, CommunityUpdate

router = APIRouter(prefix="/v1/communities", tags=["communities"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=CommunityRead, responses=problem_responses(401, 403, 422)
)
async def create_community(data: CommunityCreate, session: SessionDep, _caller: CommunityWriter) -> CommunityRead:
    """Create a community."""
    return CommunityRead.model_validate(await service.create_community(session, data))


@router.get("", response_model=CommunityPage, responses=problem_responses(401, 403, 422))
async def list_communities(session: SessionDep, page: PageDep, _caller: CommunityReader) -> CommunityPage:
    """List communities, newest first."""
    rows, next_cursor = await service.list_communities(session, page)
    return CommunityPage(items=[CommunityRead.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.get("/{community_id}", response_model=CommunityRead, responses=problem_responses(401, 403, 404))
async def get_community(community_id: uuid.UUID, session: SessionDep, _caller: CommunityReader) -> CommunityRead:
    """Read one community."""
    return CommunityRead.model_validate(await service.get_community(session, community_id))


@router.patch("/{community_id}", response_model=CommunityRead, responses=problem_responses(401, 403, 404, 422))
async def update_community(
    community_id: uuid.UUID, data: CommunityUpdate, session: SessionDep, _caller: CommunityWriter
) -> CommunityRead:
    """Change a community's name, description or time zone."""
    return CommunityRead.model_validate(await service.update_community(session, community_id, data))
