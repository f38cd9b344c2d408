"""The earning program: the default one until an operator edits it, then theirs.

The program row is created on first use together with the default rules and levels
(`INSERT ... ON CONFLICT DO NOTHING`, so concurrent first uses create it once). Edits
lock that row, so two PUTs never interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import new_id, table_of, utcnow
from services.common.problems import Unprocessable
from services.rewards.program.models import EarningRule, Level, Program
from services.rewards.program.schemas import LevelCreate, RuleCreate

PROGRAM = table_of(Program)
RULES = table_of(EarningRule)
LEVELS = table_of(Level)

# (event_type, points, daily_cap): a check-in earns once a day; chatty activities are capped.
DEFAULT_RULES: tuple[tuple[str, int, int | None], ...] = (
    ("check_in", 5, 5),
    ("message_sent", 1, 20),
    ("post_liked", 1, 10),
    ("content_shared", 3, 15),
    ("invite_accepted", 20, None),
    ("event_attended", 10, None),
    ("poll_voted", 2, 10),
    # Paid to a suggestion's author when feedback marks it done (`feedback.suggestion_completed`).
    ("suggestion_completed", 50, None),
)
DEFAULT_LEVELS: tuple[tuple[str, int], ...] = (
    ("Newcomer", 0),
    ("Regular", 100),
    ("Active", 500),
    ("Core", 2000),
    ("Legend", 10000),
)


@dataclass(frozen=True)
class Rule:
    id: uuid.UUID
    event_type: str
    points: int
    daily_cap: int | None
    community_id: uuid.UUID | None
    expires_in_days: int | None

    @property
    def reason(self) -> str:
        return f"earned:{self.event_type}"

    @property
    def skipped_reason(self) -> str:
        return f"skipped:{self.event_type}"

    def matches(self, event_type: str, community_id: uuid.UUID) -> bool:
        return self.event_type == event_type and self.community_id in (None, community_id)


@dataclass(frozen=True)
class LevelInfo:
    name: str
    min_lifetime_points: int


@dataclass(frozen=True)
class Standing:
    """Where lifetime points put a member: their level and the next one."""

    level: LevelInfo | None
    next: LevelInfo | None
    rank: int  # index of the level, -1 below the first one


def standing(levels: Sequence[LevelInfo], lifetime: int) -> Standing:
    rank = -1
    for index, level in enumerate(levels):
        if level.min_lifetime_points <= lifetime:
            rank = index
    current = levels[rank] if rank >= 0 else None
    following = levels[rank + 1] if rank + 1 < len(levels) else None
    return Standing(current, following, rank)


async def ensure_program(session: AsyncSession) -> None:
    """Create the default program if none exists yet."""
    if await session.scalar(sa.select(PROGRAM.c.id)) is not None:
        return
    now = utcnow()
    created = await session.scalar(
        postgresql.insert(PROGRAM)
        .values(id=1, created_at=now, updated_at=now)
        .on_conflict_do_nothing()
        .returning(PROGRAM.c.id)
    )
    if created is None:
        return  # created by a concurrent transaction
    await session.execute(
        RULES.insert(),
        [
            {
                "id": new_id(),
                "event_type": event_type,
                "community_id": None,
                "points": points,
                "daily_cap": cap,
                "expires_in_days": None,
                "position": position,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for position, (event_type, points, cap) in enumerate(DEFAULT_RULES)
        ],
    )
    await session.execute(LEVELS.insert(), [{"name": n, "min_lifetime_points": p} for n, p in DEFAULT_LEVELS])


async def _lock_program(session: AsyncSession) -> datetime:
    await ensure_program(session)
    now = utcnow()
    await session.execute(sa.select(PROGRAM.c.id).where(PROGRAM.c.id == 1).with_for_update())
    await session.execute(PROGRAM.update().where(PROGRAM.c.id == 1).values(updated_at=now))
    return now


async def list_rules(session: AsyncSession) -> list[Rule]:
    await ensure_program(session)
    return await _active_rules(session)


async def _active_rules(session: AsyncSession) -> list[Rule]:
    rows = await session.execute(
        sa.select(
            RULES.c.id,
            RULES.c.event_type,
            RULES.c.points,
            RULES.c.daily_cap,
            RULES.c.community_id,
            RULES.c.expires_in_days,
        )
        .where(RULES.c.active.is_(True))
        .order_by(RULES.c.position)
    )
    return [Rule(**row._mapping) for row in rows]


async def list_levels(session: AsyncSession) -> list[LevelInfo]:
    await ensure_program(session)
    return await _levels(session)


async def _levels(session: AsyncSession) -> list[LevelInfo]:
    rows = await session.execute(
        sa.select(LEVELS.c.name, LEVELS.c.min_lifetime_points).order_by(LEVELS.c.min_lifetime_points)
    )
    return [LevelInfo(row.name, row.min_lifetime_points) for row in rows]


async def load_program(session: AsyncSession) -> tuple[list[Rule], list[LevelInfo]]:
    """Rules and levels together (earning reads both for every batch)."""
    await ensure_program(session)
    return await _active_rules(session), await _levels(session)


def validate_rules(rules: Sequence[RuleCreate]) -> None:
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, uuid.UUID | None]] = set()
    for index, rule in enumerate(rules):
        key = (rule.event_type, rule.community_id)
        if key in seen:
            errors.append({"loc": ["body", index], "msg": "another rule has the same event_type and community_id"})
        seen.add(key)
        if rule.daily_cap is not None and rule.daily_cap < rule.points:
            errors.append({"loc": ["body", index, "daily_cap"], "msg": "daily_cap must be at least points"})
    if errors:
        raise Unprocessable("The rules are not valid.", errors=errors)


async def replace_rules(session: AsyncSession, rules: Sequence[RuleCreate]) -> list[Rule]:
    """Make `rules` the active set; a rule keeps its id while its event type and community stay."""
    validate_rules(rules)
    now = await _lock_program(session)
    existing = {
        (row.event_type, row.community_id): row.id
        for row in await session.execute(sa.select(RULES.c.id, RULES.c.event_type, RULES.c.community_id))
    }
    kept: set[uuid.UUID] = set()
    inserts = []
    for position, rule in enumerate(rules):
        values = {
            "points": rule.points,
            "daily_cap": rule.daily_cap,
            "expires_in_days": rule.expires_in_days,
            "position": position,
            "active": True,
            "updated_at": now,
        }
        rule_id = existing.get((rule.event_type, rule.community_id))
        if rule_id is None:
            inserts.append(
                {"id": new_id(), "event_type": rule.event_type, "community_id": rule.community_id, "created_at": now}
                | values
            )
        else:
            kept.add(rule_id)
            await session.execute(RULES.update().where(RULES.c.id == rule_id).values(**values))
    await session.execute(
        RULES.update()
        .where(RULES.c.id.not_in(kept) if kept else sa.true(), RULES.c.active.is_(True))
        .values(active=False, updated_at=now)
    )
    if inserts:
        await session.execute(RULES.insert(), inserts)
    return await list_rules(session)


def validate_levels(levels: Sequence[LevelCreate]) -> None:
    errors: list[dict[str, Any]] = []
    if not levels:
        errors.append({"loc": ["body"], "msg": "at least one level is needed"})
    elif levels[0].min_lifetime_points != 0:
        errors.append({"loc": ["body", 0, "min_lifetime_points"], "msg": "the first level starts at 0"})
    names: set[str] = set()
    for index, level in enumerate(levels):
        if level.name.casefold() in names:
            errors.append({"loc": ["body", index, "name"], "msg": "level names must be unique"})
        names.add(level.name.casefold())
        if index and level.min_lifetime_points <= levels[index - 1].min_lifetime_points:
            errors.append(
                {"loc": ["body", index, "min_lifetime_points"], "msg": "levels must be in strictly ascending order"}
            )
    if errors:
        raise Unprocessable("The levels are not valid.", errors=errors)


async def replace_levels(session: AsyncSession, levels: Sequence[LevelCreate]) -> list[LevelInfo]:
    """Make `levels` the ladder; members move on their next award (level_changed fires then)."""
    validate_levels(levels)
    await _lock_program(session)
    await session.execute(LEVELS.delete())
    await session.execute(
        LEVELS.insert(), [{"name": lv.name, "min_lifetime_points": lv.min_lifetime_points} for lv in levels]
    )
    return await list_levels(session)
