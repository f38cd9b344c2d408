"""Erasure (`DELETE /v1/members/{id}`) and the internal endpoints the gateway calls.

`/internal/...` is not under `/v1`, so the gateway never exposes it; it still sits behind
the internal token like everything else, and is left out of the OpenAPI document.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.common.db import SessionDep
from services.common.identity import ensure_self_or
from services.common.problems import Unprocessable, problem_responses
from services.members.access import Resolver, SelfOrAdmin
from services.members.deps import VaultDep
from services.members.privacy import service
from services.members.privacy.schemas import MemberExport, MemberReference
from services.members.profiles.service import MemberNotFound
from services.members.validation import ExternalId

router = APIRouter(tags=["privacy"])


@router.delete(
    "/v1/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404)
)
async def erase_member(member_id: uuid.UUID, session: SessionDep, caller: SelfOrAdmin) -> Response:
    """Erase a member's personal data (admin, or the member itself); emits `member.erased`."""
    ensure_self_or(caller, member_id)
    await service.erase_member(session, member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/internal/members/resolve", response_model=MemberReference, include_in_schema=False)
async def resolve_member(
    session: SessionDep,
    caller: Resolver,
    member_id: Annotated[uuid.UUID | None, Query()] = None,
    external_id: Annotated[ExternalId | None, Query()] = None,
) -> MemberReference:
    """Resolve a member id or external id to both (the gateway mints member tokens with it)."""
    if (member_id is None) == (external_id is None):
        raise Unprocessable(
            "Give member_id or external_id.",
            errors=[{"loc": ["query", "member_id"], "msg": "give exactly one of member_id, external_id"}],
        )
    reference = await service.resolve_member(session, member_id, external_id)
    if caller.kind == "member" and caller.member_id != reference.id:
        raise MemberNotFound("No such member.")
    return reference


@router.get("/internal/members/{member_id}/export", response_model=MemberExport, include_in_schema=False)
async def export_member(
    member_id: uuid.UUID, session: SessionDep, vault: VaultDep, caller: SelfOrAdmin
) -> MemberExport:
    """Everything the members service holds about the member (admin, or the member itself)."""
    ensure_self_or(caller, member_id)
    return await service.export_member(session, vault, member_id)
