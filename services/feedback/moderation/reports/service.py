"""Reports: filing (grouped per message, one filing per reporter), the queue, resolution.

Reports of one message in a community share one queue item (a unique key on community and
message id): the filing upserts the item, taking its row lock, then inserts the reporter's
filing under its own primary key (report, reporter). So concurrent reports of a message
make one item whose `reporter_count` is the number of distinct reporters, and a reporter
repeating themself changes nothing. Reporters are never named to the reported member:
filings are shown to moderators, and to each reporter their own.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.moderation import ReportCreated, ReportResolved
from services.common.db import new_id, table_of
from services.common.events import emit
from services.common.identity import Identity
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Forbidden
from services.feedback.moderation import policy
from services.feedback.moderation.errors import (
    NotInCommunity,
    ReportAlreadyResolved,
    ReportNotFound,
    UnknownRule,
    invalid,
)
from services.feedback.moderation.membership.service import MEMBERSHIPS, is_current_member
from services.feedback.moderation.reports.models import Report, ReportFiling
from services.feedback.moderation.reports.schemas import (
    Evidence,
    FilingRead,
    ReportCreate,
    ReportPage,
    ReportRead,
    ReportResolve,
)
from services.feedback.moderation.rules import service as rules
from services.feedback.moderation.sanctions import service as sanctions

REPORTS = table_of(Report)
FILINGS = table_of(ReportFiling)
DECISIONS = {"dismissed": "dismiss", "upheld": "uphold"}


def report_read(row: Any, filings: Sequence[Any], *, moderator: bool) -> ReportRead:
    return ReportRead(
        id=row.id,
        community_id=row.community_id,
        reported_member_id=row.reported_member_id,
        message_id=row.message_id,
        rule_code=row.rule_code,
        status=row.status,
        reporter_count=row.reporter_count if moderator else None,
        filings=[
            FilingRead(
                reporter_member_id=f.reporter_member_id,
                evidence=Evidence(**f.evidence),
                note=f.note,
                created_at=f.created_at,
            )
            for f in filings
        ],
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        decision=DECISIONS.get(row.status),  # type: ignore[arg-type]
        resolution_note=row.resolution_note if moderator else None,
        sanction_id=row.sanction_id if moderator else None,
    )


async def _check_parties(
    session: AsyncSession, body: ReportCreate, reporter: policy.Reporter, caller: Identity
) -> None:
    if reporter.member_id == body.reported_member_id:
        raise invalid("reported_member_id", "members do not report themselves")
    if reporter.member_id is not None and not await is_current_member(session, body.community_id, reporter.member_id):
        if caller.kind == "member":
            raise NotInCommunity("Members report in their own communities only.")
        raise invalid("reporter_member_id", "not a member of this community")
    known = await session.scalar(
        sa.select(sa.literal(True)).where(
            MEMBERSHIPS.c.community_id == body.community_id, MEMBERSHIPS.c.member_id == body.reported_member_id
        )
    )
    if not known:
        raise invalid("reported_member_id", "not a member of this community")
    if body.rule_code is not None and await rules.rule_of(session, body.community_id, body.rule_code) is None:
        raise UnknownRule(body.rule_code)


async def create_report(
    session: AsyncSession, body: ReportCreate, caller: Identity, now: datetime
) -> tuple[ReportRead, bool]:
    """File a report; returns it as the caller sees it, and whether the filing is new."""
    reporter = policy.reporter_for(caller, body.reporter_member_id)
    await _check_parties(session, body, reporter, caller)
    values = {
        "id": new_id(),
        "community_id": body.community_id,
        "reported_member_id": body.reported_member_id,
        "message_id": body.evidence.message_id,
        "rule_code": body.rule_code,
        "status": "open",
        "reporter_count": 1,
        "created_at": now,
        "updated_at": now,
    }
    insert = postgresql.insert(REPORTS).values(values)
    if body.evidence.message_id is not None:
        # The item of this message: created, or found and locked (a concurrent first report waits here).
        insert = insert.on_conflict_do_update(
            index_elements=[REPORTS.c.community_id, REPORTS.c.message_id], set_={"updated_at": REPORTS.c.updated_at}
        )
    item = (
        await session.execute(
            insert.returning(REPORTS, sa.literal_column("xmax = 0").label("inserted"))  # xmax 0: a fresh row
        )
    ).one()
    if item.reported_member_id != body.reported_member_id:
        raise invalid("reported_member_id", "this message was reported as another member's")
    filed = await session.scalar(
        postgresql.insert(FILINGS)
        .values(
            report_id=item.id,
            reporter_id=reporter.reporter_id,
            reporter_member_id=reporter.member_id,
            filed_by=caller.key,
            evidence=body.evidence.model_dump(exclude_none=True),
            note=body.note,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(FILINGS.c.reporter_id)
    )
    if item.inserted:
        await emit(
            session,
            ReportCreated(
                report_id=item.id,
                community_id=item.community_id,
                reported_member_id=item.reported_member_id,
                rule_code=item.rule_code,
                created_at=now,
            ),
            occurred_at=now,
        )
    elif filed is not None:
        await session.execute(
            REPORTS.update()
            .where(REPORTS.c.id == item.id)
            .values(reporter_count=REPORTS.c.reporter_count + 1, updated_at=now)
        )
    return await get_report(session, item.id, caller, reporter_id=reporter.reporter_id), filed is not None


async def _filings(
    session: AsyncSession, report_ids: Sequence[uuid.UUID], reporter_id: str | None
) -> dict[Any, list[Any]]:
    where: list[sa.ColumnElement[bool]] = [FILINGS.c.report_id.in_(report_ids)]
    if reporter_id is not None:
        where.append(FILINGS.c.reporter_id == reporter_id)
    found: dict[Any, list[Any]] = defaultdict(list)
    for row in await session.execute(sa.select(FILINGS).where(*where).order_by(FILINGS.c.created_at)):
        found[row.report_id].append(row)
    return found


def _own_filings_of(caller: Identity) -> str | None:
    """None for moderators (every filing); the reporter key whose filings a member sees."""
    if policy.is_moderator(caller):
        return None
    if caller.kind == "member":
        return f"member:{caller.member_id}"
    raise Forbidden("Only operators and agents see the queue.")


async def get_report(
    session: AsyncSession, report_id: uuid.UUID, caller: Identity, *, reporter_id: str | None = None
) -> ReportRead:
    """A report: moderators see it whole; a reporter sees its status and their own filing;
    anyone else (the reported member included) gets a 404."""
    own = reporter_id if reporter_id is not None and not policy.is_moderator(caller) else _own_filings_of(caller)
    row = (await session.execute(sa.select(REPORTS).where(REPORTS.c.id == report_id))).first()
    filings = (await _filings(session, [report_id], own)).get(report_id, []) if row is not None else []
    if row is None or (own is not None and not filings):
        raise ReportNotFound("No such report.")
    return report_read(row, filings, moderator=own is None)


async def list_reports(
    session: AsyncSession,
    caller: Identity,
    page: PageParams,
    *,
    community_id: uuid.UUID | None,
    status: str | None,
    reported_member_id: uuid.UUID | None,
) -> ReportPage:
    """The queue, oldest first (moderators); a member's list is the reports they filed."""
    own = _own_filings_of(caller)
    r = REPORTS
    filters: list[sa.ColumnElement[bool]] = []
    pairs: tuple[tuple[sa.Column[Any], object], ...] = ((r.c.community_id, community_id), (r.c.status, status))
    for column, value in pairs:
        if value is not None:
            filters.append(column == value)
    if reported_member_id is not None and own is None:
        filters.append(r.c.reported_member_id == reported_member_id)
    if own is not None:
        filters.append(sa.exists().where(FILINGS.c.report_id == r.c.id, FILINGS.c.reporter_id == own))
    keys = (r.c.created_at, r.c.id)
    after = keyset_after(keys, page.cursor)
    if after is not None:
        filters.append(after)
    rows = (await session.execute(sa.select(r).where(*filters).order_by(*keys).limit(page.limit + 1))).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: (row.created_at, row.id))
    filings = await _filings(session, [row.id for row in items], own)
    return ReportPage(
        items=[report_read(row, filings.get(row.id, []), moderator=own is None) for row in items], next_cursor=cursor
    )


async def resolve_report(
    session: AsyncSession, report_id: uuid.UUID, body: ReportResolve, caller: Identity, now: datetime
) -> ReportRead:
    """Dismiss or uphold an open report (once); upholding adds a strike and applies the ladder."""
    report = await session.get(Report, report_id, with_for_update=True)
    if report is None:
        raise ReportNotFound("No such report.")
    if report.status != "open":
        raise ReportAlreadyResolved(f"This report was already {report.status}.")
    rule_code = body.rule_code or report.rule_code
    if body.decision == "uphold":
        if rule_code is None:
            raise invalid("rule_code", "required to uphold a report that names no rule")
        rule = await rules.rule_of(session, report.community_id, rule_code)
        if rule is None:
            raise UnknownRule(rule_code)
        upheld = await sanctions.apply_uphold(
            session,
            community_id=report.community_id,
            member_id=report.reported_member_id,
            rule=rule,
            report_id=report.id,
            note=body.note,
            by=caller.key,
            now=now,
        )
        report.strike_id = upheld.strike_id
        report.sanction_id = upheld.sanction.id if upheld.sanction else None
    report.status = "upheld" if body.decision == "uphold" else "dismissed"
    report.rule_code = rule_code
    report.resolved_at = report.updated_at = now
    report.resolved_by = caller.key
    report.resolution_note = body.note
    await emit(
        session,
        ReportResolved(
            report_id=report.id,
            community_id=report.community_id,
            reported_member_id=report.reported_member_id,
            decision=body.decision,
            rule_code=rule_code,
            sanction_id=report.sanction_id,
            resolved_at=now,
        ),
        occurred_at=now,
    )
    await session.flush()
    return await get_report(session, report.id, caller)
