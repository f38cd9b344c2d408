"""The contact budget: every direct touch of a member, by any partner and of any kind
(except replies), counts in a rolling 7 days.

A grant is one atomic step per member: the member's `contact_budgets` row is locked
(`SELECT ... FOR UPDATE`, created first if missing), the window is counted, and the permit
is written, all in the request's transaction; concurrent requests for one member queue on
that row, so the count they see always includes the grants before them. Requests for
different members never wait on each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import new_id, rfc3339, table_of
from services.common.problems import Conflict
from services.content.communities.service import marketing_consent
from services.content.contact.models import ContactBudget, ContactPermit, ContactPolicy
from services.content.contact.schemas import ContactBudgetRead, ContactPolicyUpdate, PermitRead, Remaining
from services.content.policy.rules import QuietHours
from services.content.policy.service import load_policy

POLICIES = table_of(ContactPolicy)
BUDGETS = table_of(ContactBudget)
PERMITS = table_of(ContactPermit)

WINDOW = timedelta(days=7)
DEFAULT_WEEKLY_MAX = 3
DEFAULT_WEEKLY_MAX_PROMOTIONS = 1


class ContactRefused(Conflict):
    """A permit refused; `reason` is the problem type (also the metric label)."""


class BudgetExhausted(ContactRefused):
    slug, title = "contact-budget-exhausted", "Contact budget exhausted"


class QuietHoursRefused(ContactRefused):
    slug, title = "quiet-hours", "Inside the community's quiet hours"


class NoConsent(ContactRefused):
    slug, title = "no-consent", "No marketing consent"


@dataclass(frozen=True)
class Limits:
    weekly_max: int
    weekly_max_promotions: int
    quiet: QuietHours | None
    quiet_inherited: bool
    is_default: bool


async def load_limits(session: AsyncSession, community_id: uuid.UUID | None) -> Limits:
    row = None
    if community_id is not None:
        row = (await session.execute(sa.select(POLICIES).where(POLICIES.c.community_id == community_id))).first()
    if row is not None and row.quiet_start is not None:
        return Limits(
            row.weekly_max, row.weekly_max_promotions, QuietHours(row.quiet_start, row.quiet_end), False, False
        )
    publishing = (await load_policy(session, community_id))[0].quiet if community_id else None
    if row is None:
        return Limits(DEFAULT_WEEKLY_MAX, DEFAULT_WEEKLY_MAX_PROMOTIONS, publishing, True, True)
    return Limits(row.weekly_max, row.weekly_max_promotions, publishing, True, False)


async def save_policy(
    session: AsyncSession, community_id: uuid.UUID, data: ContactPolicyUpdate, now: datetime
) -> Limits:
    values = {
        "weekly_max": data.weekly_max,
        "weekly_max_promotions": data.weekly_max_promotions,
        "quiet_start": data.quiet_hours.start if data.quiet_hours else None,
        "quiet_end": data.quiet_hours.end if data.quiet_hours else None,
        "updated_at": now,
    }
    stmt = postgresql.insert(POLICIES).values(community_id=community_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[POLICIES.c.community_id], set_=values))
    return await load_limits(session, community_id)


@dataclass(frozen=True)
class Usage:
    total: int
    promotions: int
    oldest: datetime | None  # of the counted touches
    oldest_promotion: datetime | None


async def usage(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> Usage:
    promotion = PERMITS.c.kind == "promotion"
    row = (
        await session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(promotion),
                sa.func.min(PERMITS.c.granted_at),
                sa.func.min(PERMITS.c.granted_at).filter(promotion),
            ).where(PERMITS.c.member_id == member_id, PERMITS.c.granted_at > now - WINDOW)
        )
    ).one()
    return Usage(int(row[0]), int(row[1]), row[2], row[3])


async def _lock_budget(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        postgresql.insert(BUDGETS)
        .values(member_id=member_id, created_at=now)
        .on_conflict_do_nothing(index_elements=[BUDGETS.c.member_id])
    )
    await session.execute(sa.select(BUDGETS.c.member_id).where(BUDGETS.c.member_id == member_id).with_for_update())


def _remaining(limits: Limits, used: Usage) -> Remaining:
    week = max(0, limits.weekly_max - used.total)
    return Remaining(week=week, promotions=min(week, max(0, limits.weekly_max_promotions - used.promotions)))


def _refused_until(limits: Limits, used: Usage, promotion: bool) -> datetime | None:
    """When the window frees a touch again (None if it has room)."""
    if used.total >= limits.weekly_max:
        return used.oldest + WINDOW if used.oldest else None
    if promotion and used.promotions >= limits.weekly_max_promotions:
        return used.oldest_promotion + WINDOW if used.oldest_promotion else None
    return None


async def grant(
    session: AsyncSession,
    member_id: uuid.UUID,
    community_id: uuid.UUID,
    kind: str,
    requested_by: str,
    zone: ZoneInfo,
    now: datetime,
) -> PermitRead:
    """Grant a touch or raise `ContactRefused`; a reply is always granted and never counted."""
    limits = await load_limits(session, community_id)
    if kind == "reply":
        return PermitRead(
            granted=True, permit_id=None, remaining=_remaining(limits, await usage(session, member_id, now))
        )
    promotion = kind == "promotion"
    if promotion and not await marketing_consent(session, member_id):
        raise NoConsent("The member has not agreed to receive promotions.")
    if limits.quiet is not None and limits.quiet.contains(now.astimezone(zone).time()):
        retry_at = limits.quiet.end_after(now, zone)
        raise QuietHoursRefused(
            f"It is quiet time in the community ({zone.key}); retry at {rfc3339(retry_at)}.",
            retry_at=rfc3339(retry_at),
        )
    await _lock_budget(session, member_id, now)
    used = await usage(session, member_id, now)
    refused_until = _refused_until(limits, used, promotion)
    if refused_until is not None or (promotion and limits.weekly_max_promotions == 0) or limits.weekly_max == 0:
        what = "promotions" if promotion and used.total < limits.weekly_max else "touches"
        raise BudgetExhausted(
            f"The member has had their {what} for this week"
            + (f"; retry at {rfc3339(refused_until)}." if refused_until else "."),
            retry_at=rfc3339(refused_until) if refused_until else None,
        )
    permit_id = new_id()
    await session.execute(
        PERMITS.insert().values(
            id=permit_id,
            member_id=member_id,
            community_id=community_id,
            kind=kind,
            requested_by=requested_by,
            granted_at=now,
        )
    )
    after = Usage(used.total + 1, used.promotions + int(promotion), used.oldest or now, used.oldest_promotion)
    return PermitRead(granted=True, permit_id=permit_id, remaining=_remaining(limits, after))


async def budget(
    session: AsyncSession, member_id: uuid.UUID, community_id: uuid.UUID | None, zone: ZoneInfo | None, now: datetime
) -> ContactBudgetRead:
    limits = await load_limits(session, community_id)
    used = await usage(session, member_id, now)
    next_at = _refused_until(limits, used, promotion=False)
    if (
        next_at is None
        and limits.quiet is not None
        and zone is not None
        and limits.quiet.contains(now.astimezone(zone).time())
    ):
        next_at = limits.quiet.end_after(now, zone)
    return ContactBudgetRead(
        member_id=member_id,
        week_used=used.total,
        weekly_max=limits.weekly_max,
        promotions_used=used.promotions,
        weekly_max_promotions=limits.weekly_max_promotions,
        next_allowed_at=next_at,
    )
