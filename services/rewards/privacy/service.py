"""Export and erasure of a member's rewards data.

The service holds no personal data beyond the member id, so erasure pseudonymizes rather
than deletes: the account is marked erased (no more earning or redeeming), pending
redemptions are cancelled with their refunds (the ledger stays balanced), free-text
adjustment reasons (which an operator may have written about the person) are blanked, and
the member leaves the leaderboards.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.pagination import PageParams
from services.rewards.badges.service import member_badges
from services.rewards.catalog import service as catalog
from services.rewards.catalog.repository import REDEMPTIONS
from services.rewards.earning.sanctions import SANCTIONS as MEMBER_SANCTIONS
from services.rewards.earning.service import CHECK_INS, COUNTS
from services.rewards.leaderboards import service as leaderboards
from services.rewards.points.repository import ACCOUNTS, ENTRIES
from services.rewards.points.schemas import LedgerEntryRead
from services.rewards.points.service import ADJUSTMENTS, lock_accounts, read_points
from services.rewards.privacy.schemas import AdjustmentExport, MemberExport
from services.rewards.program.service import list_levels

ERASED_TEXT = "[erased]"
EXPORT_PAGE = PageParams(limit=100_000, cursor=None)


async def export_member(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> MemberExport:
    erased_at = await session.scalar(sa.select(ACCOUNTS.c.erased_at).where(ACCOUNTS.c.member_id == member_id))
    entries = await session.execute(sa.select(ENTRIES).where(ENTRIES.c.member_id == member_id).order_by(ENTRIES.c.seq))
    adjustments = await session.execute(
        sa.select(ADJUSTMENTS).where(ADJUSTMENTS.c.member_id == member_id).order_by(ADJUSTMENTS.c.created_at)
    )
    counts = await session.execute(
        sa.select(COUNTS.c.event_type, COUNTS.c.total).where(COUNTS.c.member_id == member_id)
    )
    days = await session.scalars(
        sa.select(CHECK_INS.c.local_date).where(CHECK_INS.c.member_id == member_id).order_by(CHECK_INS.c.local_date)
    )
    redemptions = await session.execute(
        sa.select(REDEMPTIONS).where(REDEMPTIONS.c.member_id == member_id).order_by(REDEMPTIONS.c.created_at)
    )
    return MemberExport(
        member_id=member_id,
        erased_at=erased_at,
        points=await read_points(session, member_id, await list_levels(session), now, including_erased=True),
        ledger=[LedgerEntryRead.model_validate(row, from_attributes=True) for row in entries],
        badges=(await member_badges(session, member_id, EXPORT_PAGE)).items,
        redemptions=[catalog.redemption_read(row) for row in redemptions],
        adjustments=[
            AdjustmentExport(id=r.id, delta=r.delta, reason=r.reason, created_at=r.created_at) for r in adjustments
        ],
        activity_counts={row.event_type: row.total for row in counts},
        check_in_days=list(days),
    )


async def erase_member(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> bool:
    """Apply `member.erased`; False if the member was already erased."""
    account = (await lock_accounts(session, [member_id], now))[member_id]
    if account.erased_at is not None:
        return False
    await session.execute(
        ACCOUNTS.update().where(ACCOUNTS.c.member_id == member_id).values(erased_at=now, updated_at=now)
    )
    pending = await session.execute(
        sa.select(REDEMPTIONS).where(REDEMPTIONS.c.member_id == member_id, REDEMPTIONS.c.status == "pending")
    )
    for row in pending.all():
        await catalog.cancel(session, catalog.redemption_read(row), "system:erasure", now)
    await session.execute(ADJUSTMENTS.update().where(ADJUSTMENTS.c.member_id == member_id).values(reason=ERASED_TEXT))
    communities = await session.scalars(
        sa.select(ENTRIES.c.community_id)
        .where(ENTRIES.c.member_id == member_id, ENTRIES.c.community_id.is_not(None))
        .distinct()
    )
    await leaderboards.drop_member(session, member_id, [c for c in communities if c is not None])
    await session.execute(MEMBER_SANCTIONS.delete().where(MEMBER_SANCTIONS.c.member_id == member_id))
    return True
