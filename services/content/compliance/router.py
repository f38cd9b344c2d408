"""`/v1/communities/{id}/forbidden-terms` and the check of a text before it is a post."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.common.db import SessionDep, utcnow
from services.common.problems import problem_responses
from services.content.access import Operator, PostReader, ZonesDep
from services.content.compliance import service
from services.content.compliance.checker import Term
from services.content.compliance.schemas import (
    ComplianceFlag,
    ComplianceReport,
    ForbiddenTermBody,
    ForbiddenTermsRead,
    ForbiddenTermsUpdate,
    TextCheck,
)

router = APIRouter(prefix="/v1/communities/{community_id}", tags=["compliance"])


def _read(community_id: uuid.UUID, terms: list[Term], updated_at: object) -> ForbiddenTermsRead:
    return ForbiddenTermsRead.model_validate(
        {
            "community_id": community_id,
            "items": [ForbiddenTermBody(term=t.term, category=t.category, match=t.match) for t in terms],
            "is_default": updated_at is None,
            "updated_at": updated_at,
        }
    )


@router.get("/forbidden-terms", responses=problem_responses(401, 403))
async def get_forbidden_terms(community_id: uuid.UUID, session: SessionDep, _caller: Operator) -> ForbiddenTermsRead:
    """The community's forbidden terms (the defaults until an operator sets its own list)."""
    terms, updated_at = await service.load_terms(session, community_id)
    return _read(community_id, terms, updated_at)


@router.put("/forbidden-terms", responses=problem_responses(401, 403, 404, 422, 503))
async def put_forbidden_terms(
    community_id: uuid.UUID, data: ForbiddenTermsUpdate, session: SessionDep, _caller: Operator, zones: ZonesDep
) -> ForbiddenTermsRead:
    """Replace the community's forbidden terms (phrases of 2+ characters, or named patterns)."""
    await zones.zone_of(community_id)  # the community must exist in members
    now = utcnow()
    terms = await service.save_terms(session, community_id, data.items, now)
    return _read(community_id, terms, now)


@router.post("/compliance-check", responses=problem_responses(401, 403, 422))
async def check_text_compliance(
    community_id: uuid.UUID, data: TextCheck, session: SessionDep, _caller: PostReader
) -> ComplianceReport:
    """Check a title and body against the community's list before they are a post (nothing is stored)."""
    flags = await service.flags_for(session, community_id, data.title, data.body)
    return ComplianceReport(
        flags=[ComplianceFlag.model_validate(f) for f in service.flags_json(flags)], checked_at=utcnow()
    )
