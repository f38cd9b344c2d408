"""Strikes, the sanction ladder, direct sanctions, lifting, appeals and standing.

Every change to one member's strikes and sanctions in a community first locks their
membership row, so two upholds at once count each other's strike. Each sanction writes
`moderation.sanction_applied` in its transaction; each end (expiry, lift, appeal) writes
`moderation.sanction_lifted`, guarded by a conditional UPDATE on `status = 'active'`, so
it is announced once whoever ends it first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.moderation import SanctionApplied, SanctionLifted
from services.common.db import new_id, table_of
from services.common.events import EventDraft, emit, emit_many
from services.common.identity import Identity
from services.feedback.moderation.errors import SanctionNotActive, SanctionNotFound, UnknownRule, invalid
from services.feedback.moderation.membership.service import lock_membership
from services.feedback.moderation.rules import service as rules
from services.feedback.moderation.rules.schemas import RuleItem
from services.feedback.moderation.sanctions.models import Sanction, Strike
from services.feedback.moderation.sanctions.schemas import (
    ActiveSanction,
    SanctionCreate,
    SanctionRead,
    StandingRead,
    StrikeRead,
)

SANCTIONS = table_of(Sanction)
STRIKES = table_of(Strike)


@dataclass(frozen=True)
class Upheld:
    """What upholding a report did: the strike it added and the sanction the ladder chose."""

    strike_id: uuid.UUID
    sanction: SanctionRead | None


def sanction_read(row: Any) -> SanctionRead:
    return SanctionRead.model_validate(row, from_attributes=True)


def _counting(now: datetime) -> list[sa.ColumnElement[bool]]:
    return [STRIKES.c.removed_at.is_(None), STRIKES.c.expires_at > now]


async def _sanction(
    session: AsyncSession,
    *,
    community_id: uuid.UUID,
    member_id: uuid.UUID,
    action: str,
    minutes: int | None,
    rule_code: str,
    reason: str | None,
    by: str,
    now: datetime,
    report_id: uuid.UUID | None = None,
    strike_id: uuid.UUID | None = None,
) -> SanctionRead:
    until = now + timedelta(minutes=minutes) if minutes is not None and action != "warn" else None
    sanction = Sanction(
        id=new_id(),
        community_id=community_id,
        member_id=member_id,
        action=action,
        rule_code=rule_code,
        reason=reason,
        report_id=report_id,
        strike_id=strike_id,
        created_by=by,
        created_at=now,
        until=until,
        status="issued" if action == "warn" else "active",
    )
    session.add(sanction)
    await emit(
        session,
        SanctionApplied(
            sanction_id=sanction.id,
            member_id=member_id,
            community_id=community_id,
            action=action,  # type: ignore[arg-type]
            until=until,
            rule_code=rule_code,
            applied_at=now,
        ),
        occurred_at=now,
    )
    return sanction_read(sanction)


async def apply_uphold(
    session: AsyncSession,
    *,
    community_id: uuid.UUID,
    member_id: uuid.UUID,
    rule: RuleItem,
    report_id: uuid.UUID,
    note: str | None,
    by: str,
    now: datetime,
) -> Upheld:
    """Add a strike and apply the ladder's step for the strikes that now count (a `severe`
    rule bans at once, whatever the count)."""
    await lock_membership(session, community_id, member_id)
    ladder = await rules.get_ladder(session, community_id)
    strike = Strike(
        id=new_id(),
        community_id=community_id,
        member_id=member_id,
        report_id=report_id,
        rule_code=rule.code,
        created_at=now,
        expires_at=now + timedelta(days=ladder.strike_ttl_days),
    )
    session.add(strike)
    await session.flush()
    counting = await session.scalar(
        sa.select(sa.func.count()).where(
            STRIKES.c.community_id == community_id, STRIKES.c.member_id == member_id, *_counting(now)
        )
    )
    if rule.severity == "severe":
        action, minutes = "ban", None
    else:
        step = rules.step_for(ladder, int(counting or 0))
        if step is None:
            return Upheld(strike.id, None)
        action, minutes = step.action, step.minutes
    sanction = await _sanction(
        session,
        community_id=community_id,
        member_id=member_id,
        action=action,
        minutes=minutes,
        rule_code=rule.code,
        reason=note,
        by=by,
        now=now,
        report_id=report_id,
        strike_id=strike.id,
    )
    return Upheld(strike.id, sanction)


async def create_sanction(session: AsyncSession, body: SanctionCreate, caller: Identity, now: datetime) -> SanctionRead:
    """An operator's direct sanction (no strike): the rule must be the community's, the member one of its own."""
    if await rules.rule_of(session, body.community_id, body.rule_code) is None:
        raise UnknownRule(body.rule_code)
    if not await lock_membership(session, body.community_id, body.member_id):
        raise invalid("member_id", "not a member of this community")
    return await _sanction(
        session,
        community_id=body.community_id,
        member_id=body.member_id,
        action=body.action,
        minutes=body.minutes,
        rule_code=body.rule_code,
        reason=body.reason,
        by=caller.key,
        now=now,
    )


async def _end(
    session: AsyncSession,
    sanction_id: uuid.UUID,
    reason: Literal["lifted", "appeal"],
    by: str,
    now: datetime,
    note: str | None = None,
) -> SanctionRead | None:
    """End an active mute or ban once (the conditional UPDATE) and announce it; None if it was not active."""
    values: dict[str, Any] = {"status": "lifted", "ended_at": now, "end_reason": reason, "ended_by": by}
    if note:
        values["reason"] = sa.func.concat_ws("\n", SANCTIONS.c.reason, note)
    row = (
        await session.execute(
            SANCTIONS.update()
            .where(SANCTIONS.c.id == sanction_id, SANCTIONS.c.status == "active")
            .values(values)
            .returning(SANCTIONS)
        )
    ).first()
    if row is None:
        return None
    await emit(
        session,
        SanctionLifted(
            sanction_id=row.id,
            member_id=row.member_id,
            community_id=row.community_id,
            action=row.action,
            reason=reason,
            lifted_at=now,
        ),
        occurred_at=now,
    )
    return sanction_read(row)


async def lift_sanction(
    session: AsyncSession, sanction_id: uuid.UUID, note: str | None, caller: Identity, now: datetime
) -> SanctionRead:
    lifted = await _end(session, sanction_id, "lifted", caller.key, now, note)
    if lifted is not None:
        return lifted
    found = await session.get(Sanction, sanction_id)
    if found is None:
        raise SanctionNotFound("No such sanction.")
    raise SanctionNotActive(f"This {found.action} is {found.status}: there is nothing to lift.")


async def sanction_of(session: AsyncSession, sanction_id: uuid.UUID, member_id: uuid.UUID) -> SanctionRead | None:
    """The member's own sanction with this id (None if there is none, or it is someone else's)."""
    row = (
        await session.execute(
            sa.select(SANCTIONS).where(SANCTIONS.c.id == sanction_id, SANCTIONS.c.member_id == member_id)
        )
    ).first()
    return None if row is None else sanction_read(row)


async def grant_appeal(session: AsyncSession, sanction_id: uuid.UUID, by: str, now: datetime) -> None:
    """An appeal decided in the member's favour: the sanction ends (a mute or ban is lifted,
    a warning withdrawn) and the strike behind it stops counting."""
    found = await session.get(Sanction, sanction_id, with_for_update=True)
    if found is None:
        return
    if found.status == "active":
        await _end(session, sanction_id, "appeal", by, now)
    elif found.status == "issued":
        found.status, found.ended_at, found.end_reason, found.ended_by = "lifted", now, "appeal", by
    if found.strike_id is not None:
        await session.execute(
            STRIKES.update()
            .where(STRIKES.c.id == found.strike_id, STRIKES.c.removed_at.is_(None))
            .values(removed_at=now)
        )


async def expire_due(session: AsyncSession, now: datetime, limit: int) -> int:
    """End up to `limit` mutes and bans whose time is up, each exactly once: the due rows are
    claimed with `SKIP LOCKED` (another replica takes others) and the UPDATE re-checks
    `status = 'active'` (a sanction lifted meanwhile is not announced again)."""
    s = SANCTIONS
    waiting = [s.c.status == "active", s.c.until.is_not(None), s.c.until <= now]
    due = (
        sa.select(s.c.id).where(*waiting).order_by(s.c.until).limit(limit).with_for_update(skip_locked=True).cte("due")
    )
    rows = (
        await session.execute(
            s.update()
            # Only the status again (a sanction lifted meanwhile): repeating the whole
            # `waiting` filter invites a nested-loop plan (see sla/job.py).
            .where(s.c.id == due.c.id, s.c.status == "active")
            .values(status="expired", ended_at=s.c.until, end_reason="expired", ended_by="system")
            .returning(s.c.id, s.c.member_id, s.c.community_id, s.c.action, s.c.until)
        )
    ).all()
    if rows:
        await emit_many(
            session,
            [
                EventDraft(
                    SanctionLifted(
                        sanction_id=row.id,
                        member_id=row.member_id,
                        community_id=row.community_id,
                        action=row.action,
                        reason="expired",
                        lifted_at=row.until,
                    ),
                    occurred_at=now,
                )
                for row in rows
            ],
        )
    return len(rows)


async def standing(
    session: AsyncSession, member_id: uuid.UUID, community_id: uuid.UUID | None, now: datetime
) -> StandingRead:
    where_s = [SANCTIONS.c.member_id == member_id]
    where_k = [STRIKES.c.member_id == member_id]
    if community_id is not None:
        where_s.append(SANCTIONS.c.community_id == community_id)
        where_k.append(STRIKES.c.community_id == community_id)
    history = [
        sanction_read(row)
        for row in await session.execute(
            sa.select(SANCTIONS).where(*where_s).order_by(SANCTIONS.c.created_at.desc(), SANCTIONS.c.id.desc())
        )
    ]
    strikes = [
        StrikeRead(
            id=row.id,
            community_id=row.community_id,
            rule_code=row.rule_code,
            report_id=row.report_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            removed_at=row.removed_at,
            counting=row.removed_at is None and row.expires_at > now,
        )
        for row in await session.execute(
            sa.select(STRIKES).where(*where_k).order_by(STRIKES.c.created_at.desc(), STRIKES.c.id.desc())
        )
    ]
    active = [
        ActiveSanction(id=s.id, community_id=s.community_id, action=s.action, rule_code=s.rule_code, until=s.until)
        for s in history
        if s.status == "active" and (s.until is None or s.until > now)
    ]
    return StandingRead(
        member_id=member_id,
        community_id=community_id,
        strikes=sum(1 for strike in strikes if strike.counting),
        active=active,
        history=history,
        strike_history=strikes,
    )
