"""Moderation's part of a member's export and erasure.

Reports and sanctions stay as records after erasure: the member's id, as reporter and as
reported member, becomes the pseudonym feedback chose for them, so counts stay true (a
report keeps its number of reporters, a standing its strikes) and nobody is named.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.feedback.moderation.membership.service import forget_member
from services.feedback.moderation.reports.schemas import Evidence
from services.feedback.moderation.reports.service import FILINGS, REPORTS
from services.feedback.moderation.sanctions.schemas import StandingRead
from services.feedback.moderation.sanctions.service import SANCTIONS, STRIKES, standing


class FiledReportExport(BaseModel):
    report_id: uuid.UUID
    community_id: uuid.UUID
    reported_member_id: uuid.UUID
    status: str
    evidence: Evidence
    note: str | None
    created_at: datetime


class ModerationExport(BaseModel):
    """The reports the member filed (their own words) and their standing."""

    reports: list[FiledReportExport]
    standing: StandingRead


async def export_member(session: AsyncSession, member_id: uuid.UUID) -> ModerationExport:
    rows = await session.execute(
        sa.select(FILINGS, REPORTS.c.community_id, REPORTS.c.reported_member_id, REPORTS.c.status)
        .join(REPORTS, REPORTS.c.id == FILINGS.c.report_id)
        .where(FILINGS.c.reporter_member_id == member_id)
        .order_by(FILINGS.c.created_at)
    )
    return ModerationExport(
        reports=[
            FiledReportExport(
                report_id=row.report_id,
                community_id=row.community_id,
                reported_member_id=row.reported_member_id,
                status=row.status,
                evidence=Evidence(**row.evidence),
                note=row.note,
                created_at=row.created_at,
            )
            for row in rows
        ],
        standing=await standing(session, member_id, None, utcnow()),
    )


async def erase_member(session: AsyncSession, member_id: uuid.UUID, pseudonym: uuid.UUID) -> None:
    await session.execute(
        FILINGS.update()
        .where(FILINGS.c.reporter_member_id == member_id)
        .values(
            reporter_member_id=pseudonym,
            reporter_id=f"member:{pseudonym}",
            # Who filed it: the member themself, or a partner key or staff member on their behalf.
            filed_by=sa.case(
                (FILINGS.c.filed_by == f"member:{member_id}", f"member:{pseudonym}"), else_=FILINGS.c.filed_by
            ),
        )
    )
    await session.execute(
        REPORTS.update().where(REPORTS.c.reported_member_id == member_id).values(reported_member_id=pseudonym)
    )
    await session.execute(STRIKES.update().where(STRIKES.c.member_id == member_id).values(member_id=pseudonym))
    await session.execute(SANCTIONS.update().where(SANCTIONS.c.member_id == member_id).values(member_id=pseudonym))
    await forget_member(session, member_id)
