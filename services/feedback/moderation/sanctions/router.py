"""Direct sanctions, lifting, and a member's standing."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.common.db import SessionDep, utcnow
from services.common.identity import Caller
from services.common.problems import problem_responses
from services.feedback.moderation import policy
from services.feedback.moderation.policy import Operator
from services.feedback.moderation.sanctions import service
from services.feedback.moderation.sanctions.schemas import SanctionCreate, SanctionLift, SanctionRead, StandingRead

router = APIRouter(tags=["moderation"])


@router.post("/v1/sanctions", status_code=201, responses=problem_responses(401, 403, 422))
async def create_sanction(body: SanctionCreate, session: SessionDep, caller: Operator) -> SanctionRead:
    """Warn, mute or ban a member directly (operators); the partner's bot carries it out."""
    return await service.create_sanction(session, body, caller, utcnow())


@router.post("/v1/sanctions/{sanction_id}/lift", responses=problem_responses(401, 403, 404, 409, 422))
async def lift_sanction(
    sanction_id: uuid.UUID, session: SessionDep, caller: Operator, body: SanctionLift | None = None
) -> SanctionRead:
    """End a mute or ban before its time (operators)."""
    return await service.lift_sanction(session, sanction_id, body.reason if body else None, caller, utcnow())


@router.get("/v1/members/{member_id}/standing", responses=problem_responses(401, 403, 404, 422))
async def get_member_standing(
    member_id: uuid.UUID, session: SessionDep, caller: Caller, community_id: uuid.UUID | None = None
) -> StandingRead:
    """Strikes that count, sanctions in force and the history (operators, agents; the member)."""
    policy.ensure_can_read_standing(caller, member_id)
    return await service.standing(session, member_id, community_id, utcnow())
