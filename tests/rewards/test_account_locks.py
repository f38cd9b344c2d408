"""Locking accounts (`points.service.lock_accounts`): existing accounts are locked and missing
ones created in one statement; an account another transaction creates meanwhile is locked
as that transaction left it."""

from __future__ import annotations

import asyncio
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
    """The lock statement's snapshot does not show the account the other transaction
    inserted, and its own insert skips it: the id is locked again, seeing the commit."""
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
