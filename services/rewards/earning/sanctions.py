"""Mutes and bans as rewards knows them, and whether one held when an activity happened.

No points are earned while a member is muted or banned in the community of the activity:
the activity is still recorded (counts, check-in days), and each rule it matches writes a
ledger entry of 0 points, `skipped:<rule>` with `skipped_because` muted or banned, instead
of an award. Warnings change nothing here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.moderation import SanctionApplied, SanctionLifted
from services.common.db import table_of
from services.rewards.earning.models import MemberSanction
from services.rewards.sql import array_rows, row_params

SANCTIONS = table_of(MemberSanction)
SILENCING = ("mute", "ban")


async def apply_sanction_applied(session: AsyncSession, event: SanctionApplied) -> None:
    if event.action not in SILENCING:
        return
    insert = postgresql.insert(SANCTIONS)
    await session.execute(
        insert.values(
            sanction_id=event.sanction_id,
            member_id=event.member_id,
            community_id=event.community_id,
            action=event.action,
            applied_at=event.applied_at,
            until=event.until,
        ).on_conflict_do_update(
            index_elements=[SANCTIONS.c.sanction_id],
            set_={"applied_at": insert.excluded.applied_at, "until": insert.excluded.until},
        )
    )


async def apply_sanction_lifted(session: AsyncSession, event: SanctionLifted) -> None:
    if event.action not in SILENCING:
        return
    insert = postgresql.insert(SANCTIONS)
    await session.execute(
        insert.values(
            sanction_id=event.sanction_id,
            member_id=event.member_id,
            community_id=event.community_id,
            action=event.action,
            lifted_at=event.lifted_at,
        ).on_conflict_do_update(
            index_elements=[SANCTIONS.c.sanction_id],
            set_={
                "lifted_at": sa.func.least(
                    sa.func.coalesce(SANCTIONS.c.lifted_at, insert.excluded.lifted_at), insert.excluded.lifted_at
                )
            },
        )
    )


Span = tuple[str, datetime, datetime | None]
_PAIR = ("member_id", "community_id")


class Silenced:
    """The batch's members' mutes and bans, to ask per activity (one query per batch)."""

    def __init__(self, spans: dict[tuple[uuid.UUID, uuid.UUID], list[Span]]) -> None:
        self.spans = spans

    @classmethod
    async def load(cls, session: AsyncSession, activities: Sequence[ActivityRecorded]) -> Silenced:
        pairs = {(a.member_id, a.community_id) for a in activities}
        if not pairs:
            return cls({})
        # Only spans that may hold for one of these activities: a member's old, ended
        # sanctions do not grow this read on the earning path.
        earliest = min(a.occurred_at for a in activities)
        s = SANCTIONS
        ended = sa.func.least(s.c.until, s.c.lifted_at)  # Postgres' least skips NULLs, as `because` does
        # A join on the exact (member, community) pairs, one array per column: the same SQL
        # text whatever the batch (IN lists change it with every size), no cross product.
        keys = array_rows(s, _PAIR, name="k")
        rows = await session.execute(
            sa.select(s)
            .join(keys, sa.and_(s.c.member_id == keys.c.member_id, s.c.community_id == keys.c.community_id))
            .where(s.c.applied_at.is_not(None), sa.or_(ended.is_(None), ended > earliest)),
            row_params(_PAIR, [{"member_id": m, "community_id": c} for m, c in pairs]),
        )
        spans: dict[tuple[uuid.UUID, uuid.UUID], list[Span]] = defaultdict(list)
        for row in rows:
            ends = [t for t in (row.until, row.lifted_at) if t is not None]
            spans[(row.member_id, row.community_id)].append((row.action, row.applied_at, min(ends) if ends else None))
        return cls(spans)

    def because(self, activity: ActivityRecorded) -> str | None:
        """`banned` or `muted` if a ban or mute held when the activity happened, else None."""
        held = {
            action
            for action, start, end in self.spans.get((activity.member_id, activity.community_id), ())
            if start <= activity.occurred_at and (end is None or activity.occurred_at < end)
        }
        if "ban" in held:
            return "banned"
        return "muted" if "mute" in held else None
