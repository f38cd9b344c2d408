"""`/v1/communities/{id}/contact-policy`, `/v1/contact-permits`, `/v1/members/{id}/contact-budget`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from services.common.db import DatabaseDep, SessionDep, utcnow
from services.common.identity import Caller, ensure_self_or
from services.common.problems import problem_responses
from services.content.access import Operator, PermitRequester, ZonesDep
from services.content.contact import service
from services.content.contact.schemas import (
    ContactBudgetRead,
    ContactPolicyRead,
    ContactPolicyUpdate,
    PermitCreate,
    PermitRead,
)
from services.content.policy.schemas import QuietHoursBody

router = APIRouter(tags=["contact budget"])


def _read(community_id: uuid.UUID, limits: service.Limits) -> ContactPolicyRead:
    quiet = QuietHoursBody(start=limits.quiet.start, end=limits.quiet.end) if limits.quiet else None
    return ContactPolicyRead(
        community_id=community_id,
        weekly_max=limits.weekly_max,
        weekly_max_promotions=limits.weekly_max_promotions,
        quiet_hours=quiet,
        quiet_hours_inherited=limits.quiet_inherited,
        is_default=limits.is_default,
    )


@router.get("/v1/communities/{community_id}/contact-policy", responses=problem_responses(401, 403))
async def get_contact_policy(community_id: uuid.UUID, session: SessionDep, _caller: Operator) -> ContactPolicyRead:
    """The community's per-member fatigue budget (defaults until set)."""
    return _read(community_id, await service.load_limits(session, community_id))


@router.put("/v1/communities/{community_id}/contact-policy", responses=problem_responses(401, 403, 404, 422, 503))
async def put_contact_policy(
    community_id: uuid.UUID, data: ContactPolicyUpdate, session: SessionDep, _caller: Operator, zones: ZonesDep
) -> ContactPolicyRead:
    """Set the community's per-member fatigue budget."""
    await zones.zone_of(community_id)
    return _read(community_id, await service.save_policy(session, community_id, data, utcnow()))


@router.post(
    "/v1/contact-permits",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def create_contact_permit(
    data: PermitCreate, db: DatabaseDep, caller: PermitRequester, zones: ZonesDep, request: Request
) -> PermitRead:
    """Ask before a direct touch of a member; refused with 409 `contact-budget-exhausted`,
    `quiet-hours` (with `retry_at`) or `no-consent`."""
    zone = await zones.zone_of(data.community_id)
    counters = request.app.state.content_metrics
    try:
        permit = await service.grant(db, data.member_id, data.community_id, data.kind, caller.key, zone, utcnow())
    except service.ContactRefused as refused:
        counters.permits_refused.labels(reason=refused.type_slug).inc()
        raise
    counters.permits_granted.labels(kind=data.kind).inc()
    return permit


@router.get("/v1/members/{member_id}/contact-budget", responses=problem_responses(401, 403, 404, 503))
async def get_contact_budget(
    member_id: uuid.UUID,
    session: SessionDep,
    caller: Caller,
    zones: ZonesDep,
    community_id: uuid.UUID | None = None,
) -> ContactBudgetRead:
    """The member's touches in the last 7 days against the community's budget."""
    ensure_self_or(caller, member_id, "operator")
    zone = await zones.zone_of(community_id) if community_id else None
    return await service.budget(session, member_id, community_id, zone, utcnow())
