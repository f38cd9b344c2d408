"""Community rules and the sanction ladder."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.common.db import SessionDep, utcnow
from services.common.identity import Caller
from services.common.problems import problem_responses
from services.feedback.moderation.policy import Operator
from services.feedback.moderation.rules import service
from services.feedback.moderation.rules.schemas import RulesRead, RulesUpdate, SanctionLadderBody

router = APIRouter(tags=["moderation"])


@router.get("/v1/communities/{community_id}/rules", responses=problem_responses(401, 403))
async def get_community_rules(community_id: uuid.UUID, session: SessionDep, caller: Caller) -> RulesRead:
    """The community's rules and their version (staff, partners, and the community's members)."""
    return await service.read_rules(session, community_id, caller)


@router.put("/v1/communities/{community_id}/rules", responses=problem_responses(401, 403, 422))
async def put_community_rules(
    community_id: uuid.UUID, body: RulesUpdate, session: SessionDep, caller: Operator
) -> RulesRead:
    """Replace the community's rules (operators); any change bumps the version."""
    return await service.put_rules(session, community_id, body, caller, utcnow())


@router.get("/v1/communities/{community_id}/sanction-ladder", responses=problem_responses(401, 403))
async def get_sanction_ladder(community_id: uuid.UUID, session: SessionDep, _caller: Operator) -> SanctionLadderBody:
    """How strikes turn into a warning, a mute or a ban (default: 1 warn, 2 mute 24 h, 3 ban)."""
    return await service.get_ladder(session, community_id)


@router.put("/v1/communities/{community_id}/sanction-ladder", responses=problem_responses(401, 403, 422))
async def put_sanction_ladder(
    community_id: uuid.UUID, body: SanctionLadderBody, session: SessionDep, _caller: Operator
) -> SanctionLadderBody:
    """Set the ladder and how long strikes count (operators)."""
    return await service.put_ladder(session, community_id, body, utcnow())
