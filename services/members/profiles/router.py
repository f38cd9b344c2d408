"""`/v1/members`: profiles. Operators and partners manage them; a member sees itself."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from services.common.db import SessionDep, get_database
from services.common.identity import ensure_self_or, get_caller
from services.common.pagination import PageDep
from services.common.problems import Forbidden, problem_responses
from services.members.access import (
    READ_SCOPES,
    WRITE_SCOPES,
    MemberListReader,
    MemberWriter,
    SelfOrWriter,
)
from services.members.deps import VaultDep, get_vault
from services.members.profiles import service
from services.members.profiles.schemas import (
    SELF_EDITABLE,
    MemberCreate,
    MemberPage,
    MemberRead,
    MemberUpdate,
    MemberUpsert,
)
from services.members.validation import SearchText, Tag

router = APIRouter(prefix="/v1/members", tags=["members"])

ExternalIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+|-]{0,199}$")]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=MemberRead, responses=problem_responses(401, 403, 409, 422)
)
async def create_member(data: MemberCreate, session: SessionDep, vault: VaultDep, _caller: MemberWriter) -> MemberRead:
    """Create a member; a taken `external_id` is 409."""
    return service.member_read(await service.create_member(session, vault, data), vault)


@router.put(
    "/by-external-id/{external_id}",
    response_model=MemberRead,
    responses={201: {"model": MemberRead, "description": "Created"}, **problem_responses(401, 403, 409, 422)},
)
async def upsert_member(
    external_id: ExternalIdPath,
    data: MemberUpsert,
    session: SessionDep,
    vault: VaultDep,
    response: Response,
    _caller: MemberWriter,
) -> MemberRead:
    """Create (201) or change (200) the member with this external id."""
    member, created = await service.upsert_member(session, vault, external_id, data)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return service.member_read(member, vault)


@router.get("", response_model=MemberPage, responses=problem_responses(401, 403, 422))
async def list_members(
    session: SessionDep,
    vault: VaultDep,
    page: PageDep,
    _caller: MemberListReader,
    community_id: Annotated[uuid.UUID | None, Query(description="Current members of this community")] = None,
    tag: Annotated[Tag | None, Query(description="Members with this tag")] = None,
    q: Annotated[
        SearchText | None, Query(description="Exact email, phone or external id, or part of the display name")
    ] = None,
    inactive_days: Annotated[int | None, Query(ge=1, le=3650, description="No activity for this many days")] = None,
) -> MemberPage:
    """List members, newest first, with filters."""
    filters = service.MemberFilters(community_id=community_id, tag=tag, q=q, inactive_days=inactive_days)
    rows, next_cursor = await service.page_of_members(session, service.filter_conditions(vault, filters), page)
    return MemberPage(items=[service.member_read(m, vault) for m in rows], next_cursor=next_cursor)


async def readable_member(member_id: uuid.UUID, request: Request) -> MemberRead:
    """The member at this path as committed, if the caller may read it: staff and partners by
    role or scope, a member only itself (anyone else's is 404, so nothing leaks).

    The most frequent read of the service: the caller, database and vault are read here
    rather than through their own dependencies. One dependency to solve instead of three
    saves about 20 us per request, and the role check and the self check are one step."""
    caller = await get_caller(request)
    ensure_self_or(caller, member_id, "operator", "analyst", scopes=READ_SCOPES)
    return await service.read_member(await get_database(request), await get_vault(request), member_id)


ReadableMember = Annotated[MemberRead, Depends(readable_member)]


@router.get("/{member_id}", response_model=MemberRead, responses=problem_responses(401, 403, 404))
async def get_member(member: ReadableMember) -> MemberRead:
    """Read one member."""
    return member


@router.patch("/{member_id}", response_model=MemberRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_member(
    member_id: uuid.UUID, data: MemberUpdate, session: SessionDep, vault: VaultDep, caller: SelfOrWriter
) -> MemberRead:
    """Change a member (a member may change its own name, contact details and consent)."""
    ensure_self_or(caller, member_id, "operator", scopes=WRITE_SCOPES)
    if caller.kind == "member" and (locked := sorted(data.model_fields_set - SELF_EDITABLE)):
        raise Forbidden(f"Members cannot change {', '.join(locked)}.")
    return service.member_read(await service.update_member(session, vault, member_id, data), vault)
