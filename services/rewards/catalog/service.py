"""Catalog and redemptions: points and stock move in one transaction, or not at all.

A redemption locks the member's account (so a member's redemptions run one at a time and
can never overspend), writes the ledger, and takes the unit of stock last with a
conditional `UPDATE ... WHERE stock > 0`, so the hot reward row stays locked only from
that statement to the commit and stock can never go below zero.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import new_id
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.rewards.catalog.models import Redemption, Reward
from services.rewards.catalog.schemas import (
    RedemptionPage,
    RedemptionRead,
    RedemptionStatus,
    RewardCreate,
    RewardPage,
    RewardRead,
    RewardUpdate,
)
from services.rewards.points.service import (
    CONSUMPTIONS,
    MemberErased,
    Postings,
    lock_accounts,
    open_lots,
)
from services.rewards.sql import table_of

REWARDS = table_of(Reward)
REDEMPTIONS = table_of(Redemption)


class RewardNotFound(NotFound):
    slug, title = "reward-not-found", "No such reward"


class RedemptionNotFound(NotFound):
    slug, title = "redemption-not-found", "No such redemption"


class OutOfStock(Conflict):
    slug, title = "out-of-stock", "Out of stock"


class LimitReached(Conflict):
    slug, title = "limit-reached", "Redemption limit reached"


class RewardUnavailable(Conflict):
    slug, title = "reward-unavailable", "Reward not available now"


class RedemptionNotPending(Conflict):
    slug, title = "redemption-not-pending", "Redemption is not pending"


def _is_active(row: Any, now: datetime) -> bool:
    return (row.active_from is None or row.active_from <= now) and (row.active_to is None or now < row.active_to)


def _reward(row: Any, now: datetime) -> RewardRead:
    return RewardRead(
        id=row.id,
        name=row.name,
        description=row.description,
        cost=row.cost,
        stock=row.stock,
        per_member_limit=row.per_member_limit,
        active_from=row.active_from,
        active_to=row.active_to,
        active=_is_active(row, now),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def redemption_read(row: Any) -> RedemptionRead:
    return RedemptionRead(
        id=row.id,
        member_id=row.member_id,
        reward_id=row.reward_id,
        cost=row.cost,
        status=row.status,
        entry_id=row.entry_id,
        created_at=row.created_at,
        fulfilled_at=row.fulfilled_at,
        cancelled_at=row.cancelled_at,
    )


async def create_reward(session: AsyncSession, body: RewardCreate, now: datetime) -> RewardRead:
    values = body.model_dump() | {"id": new_id(), "created_at": now, "updated_at": now}
    await session.execute(REWARDS.insert().values(**values))
    return await get_reward(session, values["id"], now)


async def get_reward(session: AsyncSession, reward_id: uuid.UUID, now: datetime) -> RewardRead:
    row = (await session.execute(sa.select(REWARDS).where(REWARDS.c.id == reward_id))).one_or_none()
    if row is None:
        raise RewardNotFound("No reward has this id.")
    return _reward(row, now)


async def update_reward(session: AsyncSession, reward_id: uuid.UUID, body: RewardUpdate, now: datetime) -> RewardRead:
    changes = body.model_dump(exclude_unset=True)
    current = await get_reward(session, reward_id, now)
    nulls = [name for name in ("name", "description", "cost") if name in changes and changes[name] is None]
    if nulls:
        raise Unprocessable(
            "These fields cannot be null.", errors=[{"loc": ["body", name], "msg": "may not be null"} for name in nulls]
        )
    active_from = changes.get("active_from", current.active_from)
    active_to = changes.get("active_to", current.active_to)
    if active_from and active_to and active_to <= active_from:
        raise Unprocessable(
            "active_to must be after active_from.", errors=[{"loc": ["body", "active_to"], "msg": "before active_from"}]
        )
    if changes:
        await session.execute(REWARDS.update().where(REWARDS.c.id == reward_id).values(**changes, updated_at=now))
    return await get_reward(session, reward_id, now)


async def list_rewards(session: AsyncSession, page: PageParams, *, active_only: bool, now: datetime) -> RewardPage:
    query = sa.select(REWARDS).order_by(REWARDS.c.created_at.desc(), REWARDS.c.id.desc()).limit(page.limit + 1)
    if active_only:
        query = query.where(
            sa.or_(REWARDS.c.active_from.is_(None), REWARDS.c.active_from <= now),
            sa.or_(REWARDS.c.active_to.is_(None), REWARDS.c.active_to > now),
        )
    if (after := keyset_after([REWARDS.c.created_at, REWARDS.c.id], page.cursor, descending=True)) is not None:
        query = query.where(after)
    rows = (await session.execute(query)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: [row.created_at.isoformat(), row.id])
    return RewardPage(items=[_reward(row, now) for row in items], next_cursor=cursor)


async def redeem(session: AsyncSession, member_id: uuid.UUID, reward_id: uuid.UUID, now: datetime) -> RedemptionRead:
    """Take the reward's cost from the member's points and one unit of its stock."""
    reward = (await session.execute(sa.select(REWARDS).where(REWARDS.c.id == reward_id))).one_or_none()
    if reward is None:
        raise RewardNotFound("No reward has this id.")
    if not _is_active(reward, now):
        raise RewardUnavailable("This reward cannot be redeemed at this time.")
    if reward.stock == 0:
        raise OutOfStock("This reward is out of stock.")
    account = (await lock_accounts(session, [member_id], now))[member_id]
    if account.erased_at is not None:
        raise MemberErased("This member was erased.")
    if reward.per_member_limit is not None:
        redeemed = await session.scalar(
            sa.select(sa.func.count()).where(
                REDEMPTIONS.c.member_id == member_id,
                REDEMPTIONS.c.reward_id == reward_id,
                REDEMPTIONS.c.status != "cancelled",
            )
        )
        if (redeemed or 0) >= reward.per_member_limit:
            raise LimitReached(f"This reward can be redeemed {reward.per_member_limit} time(s) per member.")
    redemption_id = new_id()
    postings = Postings(now)
    lots = await open_lots(session, member_id) if account.balance >= reward.cost else []
    entry = postings.debit(account, reward.cost, "redemption", lots, redemption_id=redemption_id)
    row = {
        "id": redemption_id,
        "member_id": member_id,
        "reward_id": reward_id,
        "cost": reward.cost,
        "status": "pending",
        "entry_id": entry["id"],
        "created_at": now,
    }
    await session.execute(REDEMPTIONS.insert().values(**row))
    read = RedemptionRead(**row, fulfilled_at=None, cancelled_at=None)
    postings.emit("rewards.redemption_created", _event_data(read, balance=account.balance))
    await postings.flush(session)
    if reward.stock is not None:
        taken = await session.scalar(
            REWARDS.update()
            .where(REWARDS.c.id == reward_id, REWARDS.c.stock > 0)
            .values(stock=REWARDS.c.stock - 1)
            .returning(REWARDS.c.stock)
        )
        if taken is None:
            raise OutOfStock("This reward is out of stock.")
    return read


def _event_data(redemption: RedemptionRead, **extra: Any) -> dict[str, Any]:
    return redemption.model_dump(mode="json") | extra


async def get_redemption(session: AsyncSession, redemption_id: uuid.UUID) -> RedemptionRead:
    row = (await session.execute(sa.select(REDEMPTIONS).where(REDEMPTIONS.c.id == redemption_id))).one_or_none()
    if row is None:
        raise RedemptionNotFound("No redemption has this id.")
    return redemption_read(row)


async def list_redemptions(
    session: AsyncSession,
    page: PageParams,
    *,
    member_id: uuid.UUID | None = None,
    reward_id: uuid.UUID | None = None,
    status: RedemptionStatus | None = None,
) -> RedemptionPage:
    query = (
        sa.select(REDEMPTIONS).order_by(REDEMPTIONS.c.created_at.desc(), REDEMPTIONS.c.id.desc()).limit(page.limit + 1)
    )
    if member_id is not None:
        query = query.where(REDEMPTIONS.c.member_id == member_id)
    if reward_id is not None:
        query = query.where(REDEMPTIONS.c.reward_id == reward_id)
    if status is not None:
        query = query.where(REDEMPTIONS.c.status == status)
    after = keyset_after([REDEMPTIONS.c.created_at, REDEMPTIONS.c.id], page.cursor, descending=True)
    if after is not None:
        query = query.where(after)
    rows = (await session.execute(query)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: [row.created_at.isoformat(), row.id])
    return RedemptionPage(items=[redemption_read(row) for row in items], next_cursor=cursor)


async def fulfil(session: AsyncSession, redemption_id: uuid.UUID, now: datetime) -> RedemptionRead:
    """Mark a pending redemption as handed over (it can no longer be cancelled)."""
    await get_redemption(session, redemption_id)
    done = await session.scalar(
        REDEMPTIONS.update()
        .where(REDEMPTIONS.c.id == redemption_id, REDEMPTIONS.c.status == "pending")
        .values(status="fulfilled", fulfilled_at=now)
        .returning(REDEMPTIONS.c.id)
    )
    if done is None:
        raise RedemptionNotPending("Only a pending redemption can be fulfilled.")
    return await get_redemption(session, redemption_id)


async def cancel(session: AsyncSession, redemption: RedemptionRead, by: str, now: datetime) -> RedemptionRead:
    """Cancel a pending redemption: refund its points to the lots they came from and its unit of stock."""
    account = (await lock_accounts(session, [redemption.member_id], now))[redemption.member_id]
    done = await session.scalar(
        REDEMPTIONS.update()
        .where(REDEMPTIONS.c.id == redemption.id, REDEMPTIONS.c.status == "pending")
        .values(status="cancelled", cancelled_at=now, cancelled_by=by)
        .returning(REDEMPTIONS.c.id)
    )
    if done is None:
        raise RedemptionNotPending("Only a pending redemption can be cancelled.")
    taken = await session.execute(
        sa.select(CONSUMPTIONS.c.lot_id, CONSUMPTIONS.c.points).where(CONSUMPTIONS.c.entry_id == redemption.entry_id)
    )
    postings = Postings(now)
    postings.restore(account, [(row.lot_id, row.points) for row in taken], "refund", redemption_id=redemption.id)
    cancelled = redemption.model_copy(update={"status": "cancelled", "cancelled_at": now})
    postings.emit("rewards.redemption_cancelled", _event_data(cancelled, balance=account.balance))
    await postings.flush(session)
    await session.execute(
        REWARDS.update()
        .where(REWARDS.c.id == redemption.reward_id, REWARDS.c.stock.is_not(None))
        .values(stock=REWARDS.c.stock + 1)
    )
    return cancelled
