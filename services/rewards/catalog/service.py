"""Catalog and redemptions: points and stock move in one statement, or not at all.

A redemption is one statement (`catalog.repository`): it locks the member's account (so a
member's redemptions run one at a time and can never overspend), takes a unit of stock,
then debits the points through the ledger's CTEs and writes the redemption and its event.
A limited reward's stock is split over `STOCK_BUCKETS` rows (`reward_stock`): a redemption
takes a unit from a random bucket that has one and that no other transaction holds
(`FOR UPDATE SKIP LOCKED`), so concurrent redemptions of one reward lock different rows
instead of queueing behind one row lock held until each commit. Only when every bucket
with units is taken does it wait for one (a plain `FOR UPDATE`, in the request's
transaction, re-checked after the wait), so "out of stock" is answered only when no bucket
has a unit left, and the CHECK `remaining >= 0` makes overselling impossible whatever happens.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import RedemptionCancelled, RedemptionCreated
from services.common.db import Database, new_id, new_ids
from services.common.events import EventDraft, emit, event_ctes
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.rewards.catalog.repository import (
    REDEEM_CTES,
    REDEEM_EVENT_COMPUTED,
    REDEEM_EVENT_FIRST,
    REDEEM_EVENT_GATE,
    REDEEM_OUTCOME,
    REDEMPTIONS,
    RETURN_UNIT,
    REWARD_BY_ID,
    REWARDS,
    STOCK,
    STOCK_LEFT,
    WAIT_FOR_UNIT,
)
from services.rewards.catalog.schemas import (
    RedemptionPage,
    RedemptionRead,
    RedemptionStatus,
    RewardCreate,
    RewardPage,
    RewardRead,
    RewardUpdate,
)
from services.rewards.points import ledger
from services.rewards.points.service import lock_accounts
from services.rewards.sql import fetch_row

DEADLOCK = "40P01"  # SQLSTATE deadlock_detected
DEADLOCK_RETRIES = 3

# Rows a limited reward's stock is spread over: enough that the redemptions in flight at
# once (bounded by the connection pool) rarely meet on one, few enough to sum in a blink.
STOCK_BUCKETS = 16


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


# The catalog's refusals the redemption statement answers with (the ledger's are its own).
REFUSALS: dict[str, tuple[type[Conflict], str]] = {
    "reward-unavailable": (RewardUnavailable, "This reward cannot be redeemed at this time."),
    "out-of-stock": (OutOfStock, "This reward is out of stock."),
    "limit-reached": (LimitReached, "This reward can be redeemed {limit} time(s) per member."),
}


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


def stock_buckets(reward_id: uuid.UUID, units: int) -> list[dict[str, Any]]:
    """`units` spread evenly over the buckets (the first ones get the remainder)."""
    share, extra = divmod(units, STOCK_BUCKETS)
    return [
        {"reward_id": reward_id, "bucket": bucket, "remaining": share + (bucket < extra)}
        for bucket in range(STOCK_BUCKETS)
    ]


async def set_stock(session: AsyncSession, reward_id: uuid.UUID, units: int | None) -> None:
    """Make the reward's units left `units` (None: unlimited). Takes every bucket's lock, so
    it waits for redemptions in flight and the new total is exact when it commits."""
    held = await session.scalars(
        sa.select(STOCK.c.bucket).where(STOCK.c.reward_id == reward_id).order_by(STOCK.c.bucket).with_for_update()
    )
    buckets = set(held.all())
    if units is None:
        if buckets:
            await session.execute(STOCK.delete().where(STOCK.c.reward_id == reward_id))
        return
    rows = stock_buckets(reward_id, units)
    if buckets == {row["bucket"] for row in rows}:
        # In place: a redemption waiting on a bucket sees the new value once this commits.
        await session.execute(
            STOCK.update()
            .where(STOCK.c.reward_id == reward_id, STOCK.c.bucket == sa.bindparam("k_bucket"))
            .values(remaining=sa.bindparam("k_remaining")),
            [{"k_bucket": row["bucket"], "k_remaining": row["remaining"]} for row in rows],
        )
        return
    if buckets:
        await session.execute(STOCK.delete().where(STOCK.c.reward_id == reward_id))
    await session.execute(STOCK.insert(), rows)


async def create_reward(session: AsyncSession, body: RewardCreate, now: datetime) -> RewardRead:
    values = body.model_dump(exclude={"stock"}) | {"id": new_id(), "created_at": now, "updated_at": now}
    await session.execute(REWARDS.insert().values(**values))
    if body.stock is not None:
        await session.execute(STOCK.insert(), stock_buckets(values["id"], body.stock))
    return await get_reward(session, values["id"], now)


async def get_reward(session: AsyncSession, reward_id: uuid.UUID, now: datetime) -> RewardRead:
    row = (await session.execute(REWARD_BY_ID, {"reward_id": reward_id})).one_or_none()
    if row is None:
        raise RewardNotFound("No reward has this id.")
    return _reward(row, now)


async def stock_left(session: AsyncSession, reward_id: uuid.UUID) -> int | None:
    """The reward's units left (None: unlimited)."""
    units = await session.scalar(sa.select(sa.func.sum(STOCK.c.remaining)).where(STOCK.c.reward_id == reward_id))
    return None if units is None else int(units)


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
    if "stock" in changes:
        await set_stock(session, reward_id, changes.pop("stock"))
    if changes or "stock" in body.model_fields_set:
        await session.execute(REWARDS.update().where(REWARDS.c.id == reward_id).values(**changes, updated_at=now))
    return await get_reward(session, reward_id, now)


async def list_rewards(session: AsyncSession, page: PageParams, *, active_only: bool, now: datetime) -> RewardPage:
    query = (
        sa.select(REWARDS, STOCK_LEFT).order_by(REWARDS.c.created_at.desc(), REWARDS.c.id.desc()).limit(page.limit + 1)
    )
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


async def redeem(
    session: AsyncSession,
    member_id: uuid.UUID,
    reward_id: uuid.UUID,
    now: datetime,
    *,
    alone: Database | None = None,
) -> RedemptionRead:
    """Take the reward's cost from the member's points and one unit of its stock, in one
    statement (see `catalog.repository`). `alone` (the service's Database): the redemption
    is the request's whole change, so the statement runs as its own transaction on the
    Database's atomic pool (no BEGIN/COMMIT round trips); it runs in the session's
    transaction when it must wait for a lock it then keeps."""
    redemption_id, entry_id, event_id = new_ids(3)  # one read of the OS's randomness, not three
    # The event with stand-ins for what only the statement knows (see REDEEM_EVENT_COMPUTED).
    draft = RedemptionRead(
        id=redemption_id,
        member_id=member_id,
        reward_id=reward_id,
        cost=1,
        status="pending",
        entry_id=entry_id,
        created_at=now,
        fulfilled_at=None,
        cancelled_at=None,
    )
    event = event_ctes(
        session,
        EventDraft(_created_event(draft, 0), event_id, occurred_at=now),
        first=REDEEM_EVENT_FIRST,
        gate=REDEEM_EVENT_GATE,
        computed=REDEEM_EVENT_COMPUTED,
    )
    sql = f"{REDEEM_CTES}\n{event.sql}\n{REDEEM_OUTCOME}"
    ids = (member_id, reward_id, now, redemption_id, entry_id)
    if alone is not None:
        async with alone.atomic() as connection:
            row = await connection.fetchrow(sql, *ids, False, *event.args)
        if (redemption := _redemption(row, draft)) is not None:
            return redemption
        # Nothing was written (the account changed before it was locked, or every bucket
        # with units was held): again in the transaction, which keeps the locks it takes.
    unit_taken = False
    for _ in range(ledger.ATTEMPTS):
        row = await fetch_row(session, sql, *ids, unit_taken, *event.args)
        if (redemption := _redemption(row, draft)) is not None:
            return redemption
        if row is not None and not row["stale"]:  # every bucket with units was held: wait for one, then again with it
            if unit_taken:
                raise RuntimeError("a redemption with its unit taken did not go ahead")
            if not await wait_for_unit(session, reward_id):
                raise OutOfStock("This reward is out of stock.")
            unit_taken = True
    raise RuntimeError(f"the account of {member_id} kept changing under its lock")


def _redemption(row: Mapping[str, Any] | None, draft: RedemptionRead) -> RedemptionRead | None:
    """The redemption the statement made, or its refusal raised; None when it did nothing
    and must run again (`stale`, or every bucket with units held)."""
    if row is None:
        raise RewardNotFound("No reward has this id.")
    if row["stale"]:
        return None
    if row["refusal"] in REFUSALS:
        kind, detail = REFUSALS[row["refusal"]]
        raise kind(detail.format(limit=row["per_member_limit"]))
    if row["refusal"] is None and not row["done"]:
        return None
    entry = ledger.debit_outcome(
        row,
        entry_id=draft.entry_id,
        member_id=draft.member_id,
        points=row["cost"],
        reason="redemption",
        now=draft.created_at,
    )
    return draft.model_copy(update={"cost": row["cost"], "entry_id": entry.id})


async def wait_for_unit(session: AsyncSession, reward_id: uuid.UUID) -> bool:
    """Take one unit, waiting for a bucket another transaction holds; False when none has
    one left. A plain `FOR UPDATE` re-reads a bucket after its holder commits or rolls back
    and moves on if it is empty by then.

    A `FOR UPDATE` that finds a bucket emptied since its snapshot keeps it locked, so a
    waiter may hold an empty bucket that a waiter with an older snapshot wants: Postgres
    then aborts one of them (deadlock). The wait runs in a savepoint, so the one aborted
    lets go of what it locked while waiting and tries again with a new snapshot."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            async with session.begin_nested():
                return await session.scalar(WAIT_FOR_UNIT, {"for_reward": reward_id}) is not None
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != DEADLOCK or attempt == DEADLOCK_RETRIES:
                raise
    raise AssertionError("unreachable")


async def return_unit(session: AsyncSession, reward_id: uuid.UUID) -> None:
    """Put one unit back into the reward's emptiest bucket that nobody holds (or wait for
    one); nothing for an unlimited reward."""
    for skip_locked in (True, False):
        if await session.scalar(RETURN_UNIT[skip_locked], {"for_reward": reward_id}) is not None:
            return


def _created_event(redemption: RedemptionRead, balance: int) -> RedemptionCreated:
    return RedemptionCreated(
        redemption_id=redemption.id,
        member_id=redemption.member_id,
        reward_id=redemption.reward_id,
        cost=redemption.cost,
        status="pending",
        entry_id=redemption.entry_id,
        balance=balance,
        created_at=redemption.created_at,
    )


def _cancelled_event(redemption: RedemptionRead, balance: int, cancelled_at: datetime) -> RedemptionCancelled:
    return RedemptionCancelled(
        redemption_id=redemption.id,
        member_id=redemption.member_id,
        reward_id=redemption.reward_id,
        cost=redemption.cost,
        status="cancelled",
        entry_id=redemption.entry_id,
        balance=balance,
        created_at=redemption.created_at,
        cancelled_at=cancelled_at,
    )


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
    # The member's account first, as every change to their points and redemptions locks it
    # (erasure too, which then cancels their pending redemptions): one lock order, no deadlock.
    await lock_accounts(session, [redemption.member_id], now)
    done = await session.scalar(
        REDEMPTIONS.update()
        .where(REDEMPTIONS.c.id == redemption.id, REDEMPTIONS.c.status == "pending")
        .values(status="cancelled", cancelled_at=now, cancelled_by=by)
        .returning(REDEMPTIONS.c.id)
    )
    if done is None:
        raise RedemptionNotPending("Only a pending redemption can be cancelled.")
    # The redemption row is ours now (a concurrent cancel waits above, then finds it cancelled).
    refund = await ledger.refund(
        session, redemption.member_id, redemption.entry_id, "refund", ledger.EntrySource.redemption(redemption.id), now
    )
    cancelled = redemption.model_copy(update={"status": "cancelled", "cancelled_at": now})
    await emit(session, _cancelled_event(cancelled, refund.balance_after, now), occurred_at=now)
    await return_unit(session, redemption.reward_id)
    return cancelled
