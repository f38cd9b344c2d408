"""A member's points and ledger; manual adjustments."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from services.common.db import SessionDep, utcnow
from services.common.idempotency import IdempotencyKey, run_idempotent
from services.common.identity import Caller, Identity, ensure_self_or, require
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.rewards.db import kit_tables
from services.rewards.points import service
from services.rewards.points.schemas import AdjustmentCreate, AdjustmentRead, LedgerPage, PointsRead
from services.rewards.program.service import list_levels

router = APIRouter(tags=["points"])

READ_ROLES = ("operator",)
READ_SCOPES = ("read",)
Adjuster = Annotated[Identity, Depends(require("operator", scopes=("rewards:write",)))]


@router.get("/v1/members/{member_id}/points", responses=problem_responses(401, 403, 404))
async def get_points(member_id: uuid.UUID, session: SessionDep, caller: Caller) -> PointsRead:
    """The member's balance, lifetime points, level, check-in streak and expiring points."""
    ensure_self_or(caller, member_id, *READ_ROLES, scopes=READ_SCOPES)
    return await service.read_points(session, member_id, await list_levels(session), utcnow())


@router.get("/v1/members/{member_id}/points/ledger", responses=problem_responses(401, 403, 404, 422))
async def list_ledger_entries(member_id: uuid.UUID, page: PageDep, session: SessionDep, caller: Caller) -> LedgerPage:
    """The member's ledger entries, newest first."""
    ensure_self_or(caller, member_id, *READ_ROLES, scopes=READ_SCOPES)
    await service.ensure_not_erased(session, member_id)
    return await service.ledger_page(session, member_id, page)


@router.post(
    "/v1/points/adjustments",
    status_code=201,
    response_model=AdjustmentRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_adjustment(
    body: AdjustmentCreate,
    request: Request,
    session: SessionDep,
    caller: Adjuster,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Credit or debit a member's points by hand; a debit never takes the balance below zero."""

    async def action() -> AdjustmentRead:
        return await service.adjust(
            session,
            member_id=body.member_id,
            delta=body.delta,
            reason=body.reason,
            by=caller.key,
            levels=await list_levels(session),
            now=utcnow(),
        )

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
