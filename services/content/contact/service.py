"""The contact budget: every direct touch of a member, by any partner and of any kind
(except replies), counts in a rolling 7 days.

A grant is one atomic step per member: the member's `contact_budgets` row is locked
(one upsert whose `DO UPDATE` takes the row lock, creating the row if missing), then one
statement counts the window and writes the permit if there is room, all in the request's
transaction; concurrent requests for one member queue on
that row, so the count they see always includes the grants before them. Requests for
different members never wait on each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
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


def _usage_query(member_id: uuid.UUID, now: datetime) -> sa.Select[int, int, Any, Any]:
    promotion = PERMITS.c.kind == "promotion"
    return sa.select(
        sa.func.count().label("total"),
        sa.func.count().filter(promotion).label("promotions"),
        sa.func.min(PERMITS.c.granted_at).label("oldest"),
        sa.func.min(PERMITS.c.granted_at).filter(promotion).label("oldest_promotion"),
    ).where(PERMITS.c.member_id == member_id, PERMITS.c.granted_at > now - WINDOW)


async def usage(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> Usage:
    row = (await session.execute(_usage_query(member_id, now))).one()
    return Usage(int(row.total), int(row.promotions), row.oldest, row.oldest_promotion)


async def _lock_budget(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> None:
    """Create the member's budget row or lock it, in one statement: `DO UPDATE` takes the row
    lock (waiting for a concurrent grant's transaction, or for the one inserting the row)."""
    stmt = postgresql.insert(BUDGETS).values(member_id=member_id, created_at=now)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[BUDGETS.c.member_id], set_={"created_at": BUDGETS.c.created_at})
    )


async def _count_and_insert(
    session: AsyncSession, permit: dict[str, Any], limits: Limits, now: datetime
) -> tuple[Usage, bool]:
    """Count the member's window and write the permit if it has room, in one statement.
    Runs after `_lock_budget`, so its snapshot already holds every grant before it."""
    used = _usage_query(permit["member_id"], now).cte("used")
    room = used.c.total < limits.weekly_max
    if permit["kind"] == "promotion":
        room = sa.and_(room, used.c.promotions < limits.weekly_max_promotions)
    columns = list(permit)
    values = [sa.literal(permit[c], PERMITS.c[c].type).label(c) for c in columns]
    granted = (
        PERMITS.insert()
        .from_select(columns, sa.select(*values).select_from(used).where(room))
        .returning(PERMITS.c.id)
        .cte("granted")
    )
    row = (
        await session.execute(
            sa.select(used, sa.select(granted.c.id).scalar_subquery().label("permit_id")).select_from(used)
        )
    ).one()
    return Usage(int(row.total), int(row.promotions), row.oldest, row.oldest_promotion), row.permit_id is not None


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
    permit_id = new_id()
    permit = {
        "id": permit_id,
        "member_id": member_id,
        "community_id": community_id,
        "kind": kind,
        "requested_by": requested_by,
        "granted_at": now,
    }
    used, written = await _count_and_insert(session, permit, limits, now)
    if not written:
        refused_until = _refused_until(limits, used, promotion)
        what = "promotions" if promotion and used.total < limits.weekly_max else "touches"
        raise BudgetExhausted(
            f"The member has had their {what} for this week"
            + (f"; retry at {rfc3339(refused_until)}." if refused_until else "."),
            retry_at=rfc3339(refused_until) if refused_until else None,
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
