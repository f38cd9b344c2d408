"""The reward catalog and redemptions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from services.common.db import SessionDep, utcnow
from services.common.idempotency import IdempotencyKey, run_idempotent
from services.common.identity import Caller, Identity, require
from services.common.pagination import PageDep
from services.common.problems import Forbidden, NotFound, Unprocessable, problem_responses
from services.rewards.catalog import service
from services.rewards.catalog.schemas import (
    RedemptionCreate,
    RedemptionPage,
    RedemptionRead,
    RedemptionStatus,
    RewardCreate,
    RewardPage,
    RewardRead,
    RewardUpdate,
)
from services.rewards.db import kit_tables

router = APIRouter(tags=["catalog"])

Operator = Annotated[Identity, Depends(require("operator"))]
Fulfiller = Annotated[Identity, Depends(require("operator", scopes=("rewards:write",)))]
STAFF_ROLES = ("operator",)


def _is_staff(caller: Identity) -> bool:
    return caller.has_role(*STAFF_ROLES) or caller.has_scope("rewards:write")


@router.post("/v1/rewards", status_code=201, responses=problem_responses(401, 403, 422))
async def create_reward(body: RewardCreate, session: SessionDep, _caller: Operator) -> RewardRead:
    """Add a reward to the catalog."""
    return await service.create_reward(session, body, utcnow())


@router.get("/v1/rewards", responses=problem_responses(401, 422))
async def list_rewards(
    page: PageDep,
    session: SessionDep,
    caller: Caller,
    active: Annotated[bool | None, Query(description="Only rewards redeemable now (always, for members)")] = None,
) -> RewardPage:
    """The catalog, newest first; members see the rewards they can redeem now."""
    active_only = bool(active) or caller.kind == "member"
    return await service.list_rewards(session, page, active_only=active_only, now=utcnow())


@router.get("/v1/rewards/{reward_id}", responses=problem_responses(401, 404))
async def get_reward(reward_id: uuid.UUID, session: SessionDep, caller: Caller) -> RewardRead:
    """One reward."""
    reward = await service.get_reward(session, reward_id, utcnow())
    if caller.kind == "member" and not reward.active:
        raise service.RewardNotFound("No reward has this id.")
    return reward


@router.patch("/v1/rewards/{reward_id}", responses=problem_responses(401, 403, 404, 422))
async def update_reward(reward_id: uuid.UUID, body: RewardUpdate, session: SessionDep, _caller: Operator) -> RewardRead:
    """Change a reward: name, cost, stock (units left), limit, availability window."""
    return await service.update_reward(session, reward_id, body, utcnow())


@router.post(
    "/v1/redemptions",
    status_code=201,
    response_model=RedemptionRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_redemption(
    body: RedemptionCreate,
    request: Request,
    session: SessionDep,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Redeem a reward: its cost in points and one unit of stock, together or not at all.

    409 `insufficient-points`, `out-of-stock`, `limit-reached`, or `reward-unavailable`
    outside the reward's `active_from`/`active_to` window.
    """
    if caller.kind == "member":
        if body.member_id not in (None, caller.member_id):
            raise NotFound("No such member.")
        member_id = caller.member_id
    elif _is_staff(caller):
        if body.member_id is None:
            raise Unprocessable(
                "Staff redeem on a member's behalf: give member_id.",
                errors=[{"loc": ["body", "member_id"], "msg": "required for staff"}],
            )
        member_id = body.member_id
    else:
        raise Forbidden("Only members redeem rewards.")
    assert member_id is not None

    async def action() -> RedemptionRead:
        # Without a key the redemption is the request's whole change: it may commit by itself.
        alone = request.app.state.db if idempotency_key is None else None
        return await service.redeem(session, member_id, body.reward_id, utcnow(), alone=alone)

    return await run_idempotent(
        db=request.app.state.db,
        tables=kit_tables,
        session=session,
        caller=caller,
        key=idempotency_key,
        payload=body,
        status_code=201,
        action=action,
    )


@router.get("/v1/redemptions", responses=problem_responses(401, 403, 422))
async def list_redemptions(
    page: PageDep,
    session: SessionDep,
    caller: Caller,
    member_id: uuid.UUID | None = None,
    reward_id: uuid.UUID | None = None,
    status: RedemptionStatus | None = None,
) -> RedemptionPage:
    """Redemptions, newest first: operators see all (with filters), a member their own."""
    if caller.kind == "member":
        if member_id not in (None, caller.member_id):
            raise NotFound("No such member.")
        member_id = caller.member_id
    elif not (caller.has_role(*STAFF_ROLES) or caller.has_scope("read", "rewards:write")):
        raise Forbidden("Your role does not allow this.")
    return await service.list_redemptions(session, page, member_id=member_id, reward_id=reward_id, status=status)


async def _visible_redemption(session: SessionDep, redemption_id: uuid.UUID, caller: Identity) -> RedemptionRead:
    redemption = await service.get_redemption(session, redemption_id)
    if caller.kind == "member" and redemption.member_id != caller.member_id:
        raise service.RedemptionNotFound("No redemption has this id.")
    if caller.kind != "member" and not (caller.has_role(*STAFF_ROLES) or caller.has_scope("read", "rewards:write")):
        raise Forbidden("Your role does not allow this.")
    return redemption


@router.get("/v1/redemptions/{redemption_id}", responses=problem_responses(401, 403, 404))
async def get_redemption(redemption_id: uuid.UUID, session: SessionDep, caller: Caller) -> RedemptionRead:
    """One redemption (a member sees only their own)."""
    return await _visible_redemption(session, redemption_id, caller)


@router.post("/v1/redemptions/{redemption_id}/fulfil", responses=problem_responses(401, 403, 404, 409))
async def fulfil_redemption(redemption_id: uuid.UUID, session: SessionDep, _caller: Fulfiller) -> RedemptionRead:
    """Mark a pending redemption as handed over."""
    return await service.fulfil(session, redemption_id, utcnow())


@router.post("/v1/redemptions/{redemption_id}/cancel", responses=problem_responses(401, 403, 404, 409))
async def cancel_redemption(redemption_id: uuid.UUID, session: SessionDep, caller: Caller) -> RedemptionRead:
    """Cancel a pending redemption, refunding its points and stock (operators; a member their own)."""
    redemption = await _visible_redemption(session, redemption_id, caller)
    if caller.kind != "member" and not _is_staff(caller):
        raise Forbidden("Your role does not allow this.")
    return await service.cancel(session, redemption, caller.key, utcnow())
