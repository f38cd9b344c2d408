"""`/v1/communities/{id}/publishing-policy` and `/best-times`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.contracts.content import PostKind
from services.common.db import SessionDep, utcnow
from services.common.problems import problem_responses
from services.content.access import Analyst, Operator, ZonesDep
from services.content.policy import service
from services.content.policy.rules import Policy
from services.content.policy.schemas import BestTimes, PublishingPolicyRead, PublishingPolicyUpdate, QuietHoursBody

router = APIRouter(prefix="/v1/communities/{community_id}", tags=["publishing policy"])


def _read(community_id: uuid.UUID, policy: Policy, timezone: str, is_default: bool) -> PublishingPolicyRead:
    quiet = QuietHoursBody(start=policy.quiet.start, end=policy.quiet.end) if policy.quiet else None
    return PublishingPolicyRead(
        community_id=str(community_id),
        quiet_hours=quiet,
        max_promotions_per_day=policy.max_promotions_per_day,
        min_gap_minutes=int(policy.min_gap.total_seconds() // 60),
        timezone=timezone,
        is_default=is_default,
    )


@router.get("/publishing-policy", responses=problem_responses(401, 403, 404, 503))
async def get_publishing_policy(
    community_id: uuid.UUID, session: SessionDep, _caller: Operator, zones: ZonesDep
) -> PublishingPolicyRead:
    """The community's publishing policy (the defaults until an operator sets one)."""
    zone = await zones.zone_of(community_id)
    policy, is_default = await service.load_policy(session, community_id)
    return _read(community_id, policy, zone.key, is_default)


@router.put("/publishing-policy", responses=problem_responses(401, 403, 404, 422, 503))
async def put_publishing_policy(
    community_id: uuid.UUID, data: PublishingPolicyUpdate, session: SessionDep, _caller: Operator, zones: ZonesDep
) -> PublishingPolicyRead:
    """Set the community's publishing policy (posts already scheduled stay scheduled)."""
    zone = await zones.zone_of(community_id)
    policy = await service.save_policy(session, community_id, data, utcnow())
    return _read(community_id, policy, zone.key, False)


@router.get("/best-times", responses=problem_responses(401, 403, 404, 422, 503))
async def get_best_times(
    community_id: uuid.UUID,
    session: SessionDep,
    _caller: Analyst,
    zones: ZonesDep,
    count: Annotated[int, Query(ge=1, le=50)] = 3,
    kind: PostKind = "announcement",
) -> BestTimes:
    """The coming week's best local hours to publish, ranked by the community's own activity."""
    zone = await zones.zone_of(community_id)
    items = await service.best_times(session, community_id, zone, utcnow(), count=count, promotion=kind == "promotion")
    return BestTimes(items=items)
