"""The member's content data for the export the gateway composes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.common.db import SessionDep
from services.common.identity import Caller, ensure_self_or
from services.common.problems import problem_responses
from services.content.privacy import service
from services.content.privacy.schemas import MemberExport

router = APIRouter(tags=["privacy"])


@router.get("/internal/members/{member_id}/export", responses=problem_responses(401, 403, 404))
async def export_member(member_id: uuid.UUID, session: SessionDep, caller: Caller) -> MemberExport:
    """Everything the content service holds about the member (admin, system, or the member)."""
    ensure_self_or(caller, member_id)  # no roles named: admins (and the system) only
    return await service.export_member(session, member_id)
