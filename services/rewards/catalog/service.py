"""Catalog and redemptions: points and stock move in one transaction, or not at all.

A redemption locks the member's account (so a member's redemptions run one at a time and
can never overspend), writes the ledger, and takes its unit of stock last. A limited
reward's stock is split over `STOCK_BUCKETS` rows (`reward_stock`): a redemption takes a
unit from a random bucket that has one and that no other transaction holds
(`FOR UPDATE SKIP LOCKED`), so concurrent redemptions of one reward lock different rows
instead of queueing behind one row lock held until each commit. Only when every bucket
with units is taken does it wait for one (a plain `FOR UPDATE`, re-checked after the
wait), so "out of stock" is answered only when no bucket has a unit left, and the CHECK
`remaining >= 0` makes overselling impossible whatever happens.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import RedemptionCancelled, RedemptionCreated
from services.common.db import new_id, table_of
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.rewards.catalog.models import Redemption, Reward, RewardStock
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
    ACCOUNT_COLUMNS,
    ACCOUNTS,
    CONSUMPTIONS,
    DEBIT_CTES,
    LOTS,
    AccountState,
    MemberErased,
    OpenLot,
    Postings,
    lock_accounts,
    open_lots,
)

REWARDS = table_of(Reward)
REDEMPTIONS = table_of(Redemption)
STOCK = table_of(RewardStock)

# Rows a limited reward's stock is spread over: enough that the redemptions in flight at
# once (bounded by the connection pool) rarely meet on one, few enough to sum in a blink.
STOCK_BUCKETS = 16

# Units left: the sum over the reward's buckets, NULL (unlimited) when it has none.
STOCK_LEFT = (
    sa.select(sa.func.sum(STOCK.c.remaining)).where(STOCK.c.reward_id == REWARDS.c.id).scalar_subquery().label("stock")
)


# The redemption path's statements, built once (their cache keys are memoized on the object).
REWARD_BY_ID = sa.select(REWARDS, STOCK_LEFT).where(REWARDS.c.id == sa.bindparam("reward_id"))
INSERT_REDEMPTION = REDEMPTIONS.insert()
# The member's live redemptions of the reward next to each open lot (in spending order):
# one round trip; a member without open lots still gets one row (lot columns NULL).
_REDEEMED = (
    sa.select(sa.func.count().label("redeemed"))
    .where(
        REDEMPTIONS.c.member_id == sa.bindparam("member_id"),
        REDEMPTIONS.c.reward_id == sa.bindparam("reward_id"),
        REDEMPTIONS.c.status != "cancelled",
    )
    .subquery()
)
_OPEN = (
    sa.select(LOTS.c.id, LOTS.c.expires_at, LOTS.c.remaining, LOTS.c.created_at)
    .where(LOTS.c.member_id == sa.bindparam("member_id"), LOTS.c.remaining > 0)
    .subquery()
)
REDEEMED_AND_LOTS = (
    sa.select(_REDEEMED.c.redeemed, _OPEN.c.id, _OPEN.c.expires_at, _OPEN.c.remaining)
    .select_from(_REDEEMED.outerjoin(_OPEN, sa.true()))
    .order_by(_OPEN.c.expires_at, _OPEN.c.created_at)
)


def _take_unit(skip_locked: bool) -> Any:
    bucket = (
        sa.select(STOCK.c.bucket)
        .where(STOCK.c.reward_id == sa.bindparam("k_reward_id"), STOCK.c.remaining > 0)
        .order_by(sa.func.random())
        .limit(1)
        .with_for_update(skip_locked=skip_locked)
        .scalar_subquery()
    )
    return (
        STOCK.update()
        .where(STOCK.c.reward_id == sa.bindparam("k_reward_id"), STOCK.c.bucket == bucket, STOCK.c.remaining > 0)
        .values(remaining=STOCK.c.remaining - 1)
        .returning(STOCK.c.bucket)
    )


TAKE_UNIT = {skip_locked: _take_unit(skip_locked) for skip_locked in (True, False)}

# The reward with the member's account, locked (LATERAL ... FOR UPDATE locks it
# only when the reward exists; after a wait it returns the account's committed version).
_LOCKED_ACCOUNT = (
    sa.select(*ACCOUNT_COLUMNS)
    .where(ACCOUNTS.c.member_id == sa.bindparam("member_id"))
    .with_for_update()
    .lateral("account")
)
REWARD_AND_LOCKED_ACCOUNT = (
    sa.select(REWARDS, STOCK_LEFT, *_LOCKED_ACCOUNT.c)
    .select_from(REWARDS.outerjoin(_LOCKED_ACCOUNT, sa.true()))
    .where(REWARDS.c.id == sa.bindparam("reward_id"))
)
_ACCOUNT_FIELDS = tuple(column.name for column in ACCOUNT_COLUMNS)
# The redemption row and the ledger writes go in with the stock statement
# (data-modifying CTEs, so they are written whether or not a free bucket had a unit; with
# none, the plain wait follows and "out of stock" rolls the whole transaction back).
REDEMPTION_COLUMNS = ("id", "member_id", "reward_id", "cost", "status", "entry_id", "created_at")
INSERT_REDEMPTION_AND_TAKE_UNIT = TAKE_UNIT[True].add_cte(
    REDEMPTIONS.insert()
    .values({name: sa.bindparam(f"r_{name}", type_=REDEMPTIONS.c[name].type) for name in REDEMPTION_COLUMNS})
    .cte("new_redemption"),
    *DEBIT_CTES,
)


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


async def redeem(session: AsyncSession, member_id: uuid.UUID, reward_id: uuid.UUID, now: datetime) -> RedemptionRead:
    """Take the reward's cost from the member's points and one unit of its stock."""
    reward = (
        await session.execute(REWARD_AND_LOCKED_ACCOUNT, {"reward_id": reward_id, "member_id": member_id})
    ).one_or_none()
    if reward is None:
        raise RewardNotFound("No reward has this id.")
    if not _is_active(reward, now):
        raise RewardUnavailable("This reward cannot be redeemed at this time.")
    if reward.stock == 0:
        raise OutOfStock("This reward is out of stock.")
    if reward.member_id is not None:
        account = AccountState(*(reward._mapping[name] for name in _ACCOUNT_FIELDS))
    else:
        account = (await lock_accounts(session, [member_id], now))[member_id]
    if account.erased_at is not None:
        raise MemberErased("This member was erased.")
    # Read after the account lock: the member's other redemptions have committed or not started.
    limited = reward.per_member_limit is not None
    redeemed, lots = await _redeemed_and_lots(session, member_id, reward_id, limited, account.balance >= reward.cost)
    if reward.per_member_limit is not None and redeemed >= reward.per_member_limit:
        raise LimitReached(f"This reward can be redeemed {reward.per_member_limit} time(s) per member.")
    redemption_id = new_id()
    postings = Postings(now)
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
    read = RedemptionRead(**row, fulfilled_at=None, cancelled_at=None)
    postings.emit(_created_event(read, account.balance))
    if reward.stock is not None:
        # Stock last (its bucket lock is held the shortest), everything else with it.
        params = {"k_reward_id": reward_id} | {f"r_{name}": value for name, value in row.items()}
        if await postings.write_with(session, INSERT_REDEMPTION_AND_TAKE_UNIT, params) is None:
            if not await take_unit(session, reward_id, skip_locked_first=False):
                raise OutOfStock("This reward is out of stock.")
        return read
    await session.execute(INSERT_REDEMPTION, row)
    await postings.flush(session)
    return read


async def _redeemed_and_lots(
    session: AsyncSession, member_id: uuid.UUID, reward_id: uuid.UUID, count: bool, spend: bool
) -> tuple[int, list[OpenLot]]:
    """How many live redemptions of this reward the member has (if `count`), and the
    member's open lots in spending order (if `spend`): one round trip."""
    if not count:
        return 0, await open_lots(session, member_id) if spend else []
    rows = (await session.execute(REDEEMED_AND_LOTS, {"member_id": member_id, "reward_id": reward_id})).all()
    return int(rows[0].redeemed), [OpenLot(r.id, r.expires_at, r.remaining) for r in rows if r.id is not None]


async def take_unit(session: AsyncSession, reward_id: uuid.UUID, *, skip_locked_first: bool = True) -> bool:
    """Take one unit from a bucket of the reward; False when none has one left.

    First a random bucket with a unit that nobody holds (`SKIP LOCKED`: no waiting); if all
    are held, wait for one (`FOR UPDATE` re-reads a bucket after its holder commits or
    rolls back, and moves on if it is empty by then)."""
    for skip_locked in (True, False) if skip_locked_first else (False,):
        taken = await session.scalar(TAKE_UNIT[skip_locked], {"k_reward_id": reward_id})
        if taken is not None:
            return True
    return False


async def return_unit(session: AsyncSession, reward_id: uuid.UUID) -> None:
    """Put one unit back into the reward's emptiest bucket that nobody holds (or wait for
    one); nothing for an unlimited reward."""
    for skip_locked in (True, False):
        bucket = (
            sa.select(STOCK.c.bucket)
            .where(STOCK.c.reward_id == reward_id)
            .order_by(STOCK.c.remaining, STOCK.c.bucket)
            .limit(1)
            .with_for_update(skip_locked=skip_locked)
            .scalar_subquery()
        )
        returned = await session.scalar(
            STOCK.update()
            .where(STOCK.c.reward_id == reward_id, STOCK.c.bucket == bucket)
            .values(remaining=STOCK.c.remaining + 1)
            .returning(STOCK.c.bucket)
        )
        if returned is not None:
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
    postings.emit(_cancelled_event(cancelled, account.balance, now))
    await postings.flush(session)
    await return_unit(session, redemption.reward_id)
    return cancelled
