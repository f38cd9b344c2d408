"""GET/PUT the earning rules and the level ladder (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from services.common.db import SessionDep
from services.common.identity import Identity, require
from services.common.problems import problem_responses
from services.rewards.program import service
from services.rewards.program.schemas import LevelCreate, LevelRead, RuleCreate, RuleRead

router = APIRouter(tags=["rewards program"])

Reader = Annotated[Identity, Depends(require("operator", "analyst", scopes=("read",)))]
Operator = Annotated[Identity, Depends(require("operator"))]


@router.get("/v1/rewards/rules", responses=problem_responses(401, 403))
async def list_rules(session: SessionDep, _caller: Reader) -> list[RuleRead]:
    """The earning rules in force (the default program until an operator sets one)."""
    return [RuleRead(**vars(rule)) for rule in await service.list_rules(session)]


@router.put("/v1/rewards/rules", responses=problem_responses(401, 403, 422))
async def replace_rules(
    rules: Annotated[list[RuleCreate], Body(max_length=200)], session: SessionDep, _caller: Operator
) -> list[RuleRead]:
    """Replace the earning rules; a rule keeps its id while its event type and community stay."""
    return [RuleRead(**vars(rule)) for rule in await service.replace_rules(session, rules)]


@router.get("/v1/rewards/levels", responses=problem_responses(401, 403))
async def list_levels(session: SessionDep, _caller: Reader) -> list[LevelRead]:
    """The levels, ascending by the lifetime points they need."""
    return [LevelRead(**vars(level)) for level in await service.list_levels(session)]


@router.put("/v1/rewards/levels", responses=problem_responses(401, 403, 422))
async def replace_levels(
    levels: Annotated[list[LevelCreate], Body(max_length=100)], session: SessionDep, _caller: Operator
) -> list[LevelRead]:
    """Replace the level ladder: strictly ascending, the first at 0, unique names."""
    return [LevelRead(**vars(level)) for level in await service.replace_levels(session, levels)]
