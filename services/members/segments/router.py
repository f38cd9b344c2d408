"""`/v1/segments`: operators define segments; operators and analysts list their members."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.common.db import SessionDep
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.members.access import SegmentReader, SegmentWriter
from services.members.deps import VaultDep
from services.members.profiles.schemas import MemberPage
from services.members.profiles.service import member_read
from services.members.segments import service
from services.members.segments.schemas import SegmentCreate, SegmentPage, SegmentRead, SegmentUpdate

router = APIRouter(prefix="/v1/segments", tags=["segments"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SegmentRead, responses=problem_responses(401, 403, 422)
)
async def create_segment(data: SegmentCreate, session: SessionDep, _caller: SegmentWriter) -> SegmentRead:
    """Save a segment rule."""
    return SegmentRead.model_validate(await service.create_segment(session, data))


@router.get("", response_model=SegmentPage, responses=problem_responses(401, 403, 422))
async def list_segments(session: SessionDep, page: PageDep, _caller: SegmentReader) -> SegmentPage:
    """List segments, newest first."""
    rows, next_cursor = await service.list_segments(session, page)
    return SegmentPage(items=[SegmentRead.model_validate(s) for s in rows], next_cursor=next_cursor)


@router.get("/{segment_id}", response_model=SegmentRead, responses=problem_responses(401, 403, 404))
async def get_segment(segment_id: uuid.UUID, session: SessionDep, _caller: SegmentReader) -> SegmentRead:
    """Read one segment."""
    return SegmentRead.model_validate(await service.get_segment(session, segment_id))


@router.patch("/{segment_id}", response_model=SegmentRead, responses=problem_responses(401, 403, 404, 422))
async def update_segment(
    segment_id: uuid.UUID, data: SegmentUpdate, session: SessionDep, _caller: SegmentWriter
) -> SegmentRead:
    """Rename a segment or change its rule."""
    return SegmentRead.model_validate(await service.update_segment(session, segment_id, data))


@router.delete("/{segment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404))
async def delete_segment(segment_id: uuid.UUID, session: SessionDep, _caller: SegmentWriter) -> Response:
    """Delete a segment (its members are not touched)."""
    await service.delete_segment(session, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{segment_id}/members", response_model=MemberPage, responses=problem_responses(401, 403, 404, 422))
async def list_segment_members(
    segment_id: uuid.UUID, session: SessionDep, vault: VaultDep, page: PageDep, _caller: SegmentReader
) -> MemberPage:
    """The members matching a segment now, newest first."""
    rows, next_cursor = await service.segment_members(session, segment_id, page)
    return MemberPage(items=[member_read(m, vault) for m in rows], next_cursor=next_cursor)
