"""Locking accounts (`points.service.lock_accounts`): missing accounts are created, then every
account is locked in member id order; an account another transaction creates meanwhile is
locked as that transaction left it."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from services.rewards.points.repository import ACCOUNTS
from services.rewards.points.service import AccountState, lock_accounts, select_for_update
from tests.system import System


def new_account(member_id: uuid.UUID, balance: int, now: datetime) -> dict[str, object]:
    return {
        "member_id": member_id,
        "balance": balance,
        "lifetime": balance,
        "last_seq": 0,
        "streak_days": 0,
        "created_at": now,
        "updated_at": now,
    }


async def lock_in_own_transaction(system: System, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, AccountState]:
    db = system.state("rewards").db
    async with db.session() as session:
        accounts = await lock_accounts(session, member_ids, datetime.now(UTC))
        await db.commit(session)
    return accounts


async def test_existing_accounts_are_locked_and_missing_ones_created(system: System) -> None:
    known, new = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    db = system.state("rewards").db
    async with db.session() as session:
        await session.execute(ACCOUNTS.insert().values(**new_account(known, 30, now)))
        await db.commit(session)
    accounts = await lock_in_own_transaction(system, [new, known, new])
    assert set(accounts) == {known, new}
    assert (accounts[known].balance, accounts[known].lifetime) == (30, 30)
    assert (accounts[new].balance, accounts[new].last_seq, accounts[new].erased_at) == (0, 0, None)
    async with db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).where(ACCOUNTS.c.member_id.in_([known, new]))) == 2
        assert await select_for_update(session, [uuid.uuid4()]) == {}


async def test_an_account_created_by_another_transaction_meanwhile_is_locked_as_it_committed(
    system: System,
) -> None:
    """Creating the missing accounts waits for the other transaction's insert and skips
    it; the lock that follows sees the account as the other transaction committed it."""
    raced, other = uuid.uuid4(), uuid.uuid4()
    db = system.state("rewards").db
    async with db.session() as holder:
        await holder.execute(ACCOUNTS.insert().values(**new_account(raced, 7, datetime.now(UTC))))
        waiter = asyncio.create_task(lock_in_own_transaction(system, [raced, other]))
        await asyncio.sleep(0.3)
        assert not waiter.done()  # its insert waits for the holder's
        await db.commit(holder)
    accounts = await waiter
    assert set(accounts) == {raced, other}
    assert accounts[raced].balance == 7
    assert accounts[other].balance == 0


async def test_concurrent_batches_creating_and_locking_overlapping_accounts_never_deadlock(system: System) -> None:
    """Batches over overlapping members, many of them new: each creates what is missing and
    locks in id order, so none ever waits for another that waits for it (Postgres would
    abort one with `deadlock detected`)."""
    db = system.state("rewards").db
    pool = [uuid.uuid4() for _ in range(12)]
    rng = random.Random(13)

    async def batch(members: list[uuid.UUID]) -> None:
        async with db.session() as session:
            await lock_accounts(session, members, datetime.now(UTC))
            await asyncio.sleep(0.01)  # hold the locks while the other batches arrive
            await db.commit(session)

    for _ in range(15):
        pool += [uuid.uuid4() for _ in range(4)]  # new members join every round
        await asyncio.gather(*(batch(rng.sample(pool, 8)) for _ in range(4)))
    async with db.session() as session:
        created = await session.scalar(sa.select(sa.func.count()).where(ACCOUNTS.c.member_id.in_(pool)))
    assert 0 < created <= len(pool)
