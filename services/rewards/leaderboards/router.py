"""GET /v1/leaderboards: top members of a community for this week, month or all time."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.common.db import DatabaseDep, utcnow
from services.common.identity import Caller
from services.common.problems import problem_responses
from services.rewards.leaderboards import service
from services.rewards.leaderboards.schemas import LeaderboardEntry, LeaderboardMe, LeaderboardRead

router = APIRouter(tags=["leaderboards"])


@router.get("/v1/leaderboards", responses=problem_responses(401, 422))
async def get_leaderboard(
    community_id: uuid.UUID,
    db: DatabaseDep,
    caller: Caller,
    period: service.Period = "week",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> LeaderboardRead:
    """Points earned in the community in the running week or month (its time zone) or all time;
    ties go to whoever reached the points first. A member also gets their own place (`me`)."""
    start = await service.current_start(db, community_id, period, utcnow())
    items = await service.top(db, community_id, period, start, limit)
    me = None
    if caller.kind == "member" and caller.member_id is not None:
        mine = await service.rank_of(db, community_id, period, start, caller.member_id)
        me = LeaderboardMe(rank=mine.rank, points=mine.points) if mine else LeaderboardMe(rank=None, points=0)
    return LeaderboardRead(
        community_id=community_id,
        period=period,
        period_start=start,
        items=[LeaderboardEntry(rank=i.rank, member_id=i.member_id, points=i.points) for i in items],
        me=me,
    )
