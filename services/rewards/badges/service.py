"""Badges: defined by operators, earned once per member (primary key), or given by hand."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import BadgeAwarded
from services.common.db import table_of
from services.common.events import EventDraft, emit, emit_many
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.rewards.badges.models import Badge, MemberBadge
from services.rewards.badges.schemas import (
    BadgeCreate,
    BadgePage,
    BadgeRead,
    CountCriteria,
    LevelCriteria,
    MemberBadgePage,
    MemberBadgeRead,
    StreakCriteria,
)
from services.rewards.program.service import LevelInfo

BADGES = table_of(Badge)
HOLDERS = table_of(MemberBadge)


class BadgeExists(Conflict):
    slug, title = "badge-exists", "Badge exists"


class BadgeNotFound(NotFound):
    slug, title = "badge-not-found", "No such badge"


def _read(row: Any) -> BadgeRead:
    return BadgeRead(
        code=row.code, name=row.name, description=row.description, criteria=row.criteria, created_at=row.created_at
    )


async def create_badge(
    session: AsyncSession, body: BadgeCreate, levels: Sequence[LevelInfo], now: datetime
) -> BadgeRead:
    criteria = body.criteria
    if isinstance(criteria, LevelCriteria) and criteria.level not in {lv.name for lv in levels}:
        raise Unprocessable(
            "The badge names a level that does not exist.",
            errors=[{"loc": ["body", "criteria", "level"], "msg": "no level has this name"}],
        )
    values = {
        "code": body.code,
        "name": body.name,
        "description": body.description,
        "criteria": criteria.model_dump() if criteria else None,
        "event_type": criteria.event_type if isinstance(criteria, CountCriteria) else None,
        "event_count": criteria.count if isinstance(criteria, CountCriteria) else None,
        "streak_days": criteria.streak_days if isinstance(criteria, StreakCriteria) else None,
        "level": criteria.level if isinstance(criteria, LevelCriteria) else None,
        "created_at": now,
    }
    created = await session.scalar(
        postgresql.insert(BADGES).values(**values).on_conflict_do_nothing().returning(BADGES.c.code)
    )
    if created is None:
        raise BadgeExists(f"A badge with code {body.code!r} exists.")
    return BadgeRead(**{k: values[k] for k in ("code", "name", "description", "criteria", "created_at")})


async def list_badges(session: AsyncSession, page: PageParams) -> BadgePage:
    query = sa.select(BADGES).order_by(BADGES.c.code).limit(page.limit + 1)
    if (after := keyset_after([BADGES.c.code], page.cursor)) is not None:
        query = query.where(after)
    rows = (await session.execute(query)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: [row.code])
    return BadgePage(items=[_read(row) for row in items], next_cursor=cursor)


async def member_badges(session: AsyncSession, member_id: uuid.UUID, page: PageParams) -> MemberBadgePage:
    query = (
        sa.select(HOLDERS, BADGES.c.name, BADGES.c.description)
        .join(BADGES, BADGES.c.code == HOLDERS.c.badge_code)
        .where(HOLDERS.c.member_id == member_id)
        .order_by(HOLDERS.c.awarded_at.desc(), HOLDERS.c.badge_code.desc())
        .limit(page.limit + 1)
    )
    if (after := keyset_after([HOLDERS.c.awarded_at, HOLDERS.c.badge_code], page.cursor, descending=True)) is not None:
        query = query.where(after)
    rows = (await session.execute(query)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: [row.awarded_at.isoformat(), row.badge_code])
    return MemberBadgePage(
        items=[
            MemberBadgeRead(
                member_id=row.member_id,
                code=row.badge_code,
                name=row.name,
                description=row.description,
                awarded_at=row.awarded_at,
                manual=row.awarded_by is not None,
            )
            for row in items
        ],
        next_cursor=cursor,
    )


def _awarded(member_id: uuid.UUID, code: str, name: str, at: datetime, by: str | None) -> BadgeAwarded:
    return BadgeAwarded(member_id=member_id, badge_code=code, badge_name=name, awarded_at=at, manual=by is not None)


async def award_by_hand(
    session: AsyncSession, member_id: uuid.UUID, code: str, by: str, now: datetime
) -> tuple[MemberBadgeRead, bool]:
    """An operator gives a badge; giving it again returns the first award (created False)."""
    badge = (await session.execute(sa.select(BADGES).where(BADGES.c.code == code))).one_or_none()
    if badge is None:
        raise BadgeNotFound(f"No badge has code {code!r}.")
    inserted = await session.scalar(
        postgresql.insert(HOLDERS)
        .values(member_id=member_id, badge_code=code, awarded_at=now, awarded_by=by)
        .on_conflict_do_nothing()
        .returning(HOLDERS.c.badge_code)
    )
    if inserted is not None:
        await emit(session, _awarded(member_id, code, badge.name, now, by), occurred_at=now)
    held = (
        await session.execute(sa.select(HOLDERS).where(HOLDERS.c.member_id == member_id, HOLDERS.c.badge_code == code))
    ).one()
    read = MemberBadgeRead(
        member_id=member_id,
        code=code,
        name=badge.name,
        description=badge.description,
        awarded_at=held.awarded_at,
        manual=held.awarded_by is not None,
    )
    return read, inserted is not None


async def award_earned(
    session: AsyncSession,
    *,
    now: datetime,
    levels: Sequence[LevelInfo],
    counts: Mapping[tuple[uuid.UUID, str], int] | None = None,
    streaks: Mapping[uuid.UUID, int] | None = None,
    level_ranks: Mapping[uuid.UUID, int] | None = None,
) -> int:
    """Award every badge whose criterion these new counts, streaks or levels meet, once each."""
    counts, streaks, level_ranks = counts or {}, streaks or {}, level_ranks or {}
    if not (counts or streaks or level_ranks):
        return 0
    badges = (await session.execute(sa.select(BADGES).where(BADGES.c.criteria.is_not(None)))).all()
    if not badges:
        return 0
    level_rank = {lv.name: index for index, lv in enumerate(levels)}
    candidates: set[tuple[uuid.UUID, str]] = set()
    for badge in badges:
        if badge.event_type is not None and badge.event_count is not None:
            candidates.update(
                (member_id, badge.code)
                for (member_id, event_type), count in counts.items()
                if event_type == badge.event_type and count >= badge.event_count
            )
        elif badge.streak_days is not None:
            candidates.update(
                (member_id, badge.code) for member_id, days in streaks.items() if days >= badge.streak_days
            )
        elif badge.level is not None and badge.level in level_rank:
            needed = level_rank[badge.level]
            candidates.update((member_id, badge.code) for member_id, rank in level_ranks.items() if rank >= needed)
    if not candidates:
        return 0
    held = await session.execute(
        sa.select(HOLDERS.c.member_id, HOLDERS.c.badge_code).where(
            HOLDERS.c.member_id.in_({member_id for member_id, _ in candidates}),
            HOLDERS.c.badge_code.in_({code for _, code in candidates}),
        )
    )
    new = candidates - {(row.member_id, row.badge_code) for row in held}
    if not new:
        return 0
    inserted = await session.execute(
        postgresql.insert(HOLDERS).on_conflict_do_nothing().returning(HOLDERS.c.member_id, HOLDERS.c.badge_code),
        [
            {"member_id": member_id, "badge_code": code, "awarded_at": now, "awarded_by": None}
            for member_id, code in new
        ],
    )
    names = {badge.code: badge.name for badge in badges}
    drafts = [
        EventDraft(_awarded(row.member_id, row.badge_code, names[row.badge_code], now, None), occurred_at=now)
        for row in inserted
    ]
    await emit_many(session, drafts)
    return len(drafts)
