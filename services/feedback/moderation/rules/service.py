"""A community's rules and sanction ladder: read, replace, and what other domains ask of them.

Replacing the rules is one upsert that bumps `version` only when the items change, so two
operators saving at once get two versions, never a lost bump, and saving the same rules
again changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of
from services.common.identity import Identity
from services.feedback.moderation import policy
from services.feedback.moderation.errors import NotInCommunity
from services.feedback.moderation.membership.service import is_current_member
from services.feedback.moderation.rules.models import CommunityRules, SanctionLadder
from services.feedback.moderation.rules.schemas import (
    DEFAULT_LADDER,
    LadderStep,
    RuleItem,
    RulesRead,
    RulesUpdate,
    SanctionLadderBody,
)

RULES = table_of(CommunityRules)
RULE_ITEMS = RULES.c["items"]  # not `.c.items`: that is the column collection's own method
LADDERS = table_of(SanctionLadder)


async def get_rules(session: AsyncSession, community_id: uuid.UUID) -> RulesRead:
    row = (await session.execute(sa.select(RULES).where(RULES.c.community_id == community_id))).first()
    if row is None:
        return RulesRead(community_id=community_id, version=0, items=[])
    return RulesRead(community_id=community_id, version=row.version, items=[RuleItem(**i) for i in row.items])


async def read_rules(session: AsyncSession, community_id: uuid.UUID, caller: Identity) -> RulesRead:
    """The rules, for anyone in the community (members of another community get a 403)."""
    member_id = policy.reads_rules_as_member(caller)
    if member_id is not None and not await is_current_member(session, community_id, member_id):
        raise NotInCommunity("Only the community's members read its rules.")
    return await get_rules(session, community_id)


async def put_rules(
    session: AsyncSession, community_id: uuid.UUID, body: RulesUpdate, caller: Identity, now: datetime
) -> RulesRead:
    items = [item.model_dump() for item in body.items]
    insert = postgresql.insert(RULES)
    await session.execute(
        insert.values(
            community_id=community_id, version=1, items=items, updated_by=caller.key, updated_at=now
        ).on_conflict_do_update(
            index_elements=[RULES.c.community_id],
            set_={
                "version": RULES.c.version + 1,
                "items": insert.excluded["items"],
                "updated_by": insert.excluded.updated_by,
                "updated_at": insert.excluded.updated_at,
            },
            where=RULE_ITEMS.is_distinct_from(insert.excluded["items"]),
        )
    )
    return await get_rules(session, community_id)


async def rule_of(session: AsyncSession, community_id: uuid.UUID, code: str) -> RuleItem | None:
    """The community's rule with this code, if it has one."""
    items = await session.scalar(sa.select(RULE_ITEMS).where(RULES.c.community_id == community_id))
    for item in items or ():
        if item["code"] == code:
            return RuleItem(**item)
    return None


async def get_ladder(session: AsyncSession, community_id: uuid.UUID) -> SanctionLadderBody:
    row = (await session.execute(sa.select(LADDERS).where(LADDERS.c.community_id == community_id))).first()
    if row is None:
        return DEFAULT_LADDER
    return SanctionLadderBody(strike_ttl_days=row.strike_ttl_days, steps=[LadderStep(**s) for s in row.steps])


async def put_ladder(
    session: AsyncSession, community_id: uuid.UUID, body: SanctionLadderBody, now: datetime
) -> SanctionLadderBody:
    insert = postgresql.insert(LADDERS)
    await session.execute(
        insert.values(
            community_id=community_id,
            strike_ttl_days=body.strike_ttl_days,
            steps=[step.model_dump() for step in body.steps],
            updated_at=now,
        ).on_conflict_do_update(
            index_elements=[LADDERS.c.community_id],
            set_={
                "strike_ttl_days": insert.excluded.strike_ttl_days,
                "steps": insert.excluded.steps,
                "updated_at": insert.excluded.updated_at,
            },
        )
    )
    return body


def step_for(ladder: SanctionLadderBody, strikes: int) -> LadderStep | None:
    """The highest step the member's active strikes reach (None below the first)."""
    reached = [step for step in ladder.steps if step.strikes <= strikes]
    return reached[-1] if reached else None
