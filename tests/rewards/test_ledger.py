"""The ledger's typed API (`points.ledger`): debit and refund as single statements, with
real concurrency where a statement waits for an account another transaction changes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.rewards.points import ledger
from services.rewards.points.models import NEVER
from services.rewards.points.repository import ACCOUNTS, CONSUMPTIONS, ENTRIES, LOTS
from tests.rewards.factories import assert_ledger_balanced
from tests.system import System


async def seed(system: System, member_id: uuid.UUID, lots: list[tuple[datetime, int]]) -> list[uuid.UUID]:
    """An account holding `lots` (expiry, points), credited by one entry; the lots' ids."""
    now = datetime.now(UTC)
    total = sum(points for _, points in lots)
    ids = [uuid.uuid4() for _ in lots]
    db = system.state("rewards").db
    async with db.session() as session:
        await session.execute(
            ACCOUNTS.insert().values(
                member_id=member_id,
                balance=total,
                lifetime=total,
                last_seq=1,
                streak_days=0,
                created_at=now,
                updated_at=now,
            )
        )
        await session.execute(
            ENTRIES.insert().values(
                id=uuid.uuid4(), member_id=member_id, seq=1, delta=total, balance_after=total, reason="adjustment",
                created_at=now,
            )
        )  # fmt: skip
        for lot_id, (expires_at, points) in zip(ids, lots, strict=True):
            await session.execute(
                LOTS.insert().values(
                    id=lot_id,
                    member_id=member_id,
                    expires_at=expires_at,
                    points=points,
                    remaining=points,
                    created_at=now,
                )
            )
        await db.commit(session)
    return ids


async def remaining(system: System, lot_ids: list[uuid.UUID]) -> list[int]:
    async with system.state("rewards").db.session() as session:
        rows = dict((await session.execute(sa.select(LOTS.c.id, LOTS.c.remaining).where(LOTS.c.id.in_(lot_ids)))).all())
    return [rows[lot_id] for lot_id in lot_ids]


async def consumed(system: System, entry_id: uuid.UUID) -> dict[uuid.UUID, int]:
    async with system.state("rewards").db.session() as session:
        rows = await session.execute(
            sa.select(CONSUMPTIONS.c.lot_id, CONSUMPTIONS.c.points).where(CONSUMPTIONS.c.entry_id == entry_id)
        )
        return {row.lot_id: row.points for row in rows}


async def debit(system: System, member_id: uuid.UUID, points: int) -> ledger.Entry:
    db = system.state("rewards").db
    async with db.session() as session:
        entry = await ledger.debit(
            session, member_id, points, "adjustment", ledger.EntrySource.adjustment(uuid.uuid4()), datetime.now(UTC)
        )
        await db.commit(session)
    return entry


def soon(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


async def test_debit_takes_the_soonest_expiring_lots_first_and_returns_its_entry(system: System) -> None:
    mid = uuid.uuid4()
    later, never, first = await seed(system, mid, [(soon(10), 10), (NEVER, 10), (soon(2), 10)])
    entry = await debit(system, mid, 15)
    assert isinstance(entry, ledger.Entry)
    assert (entry.member_id, entry.seq, entry.delta, entry.balance_after) == (mid, 2, -15, 15)
    assert await remaining(system, [first, later, never]) == [0, 5, 10]
    assert await consumed(system, entry.id) == {first: 10, later: 5}
    assert await assert_ledger_balanced(system, mid) == 15


async def test_debit_refusals_write_nothing(system: System) -> None:
    mid, gone, nobody = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await seed(system, mid, [(NEVER, 20)])
    await seed(system, gone, [(NEVER, 20)])
    db = system.state("rewards").db
    async with db.session() as session:
        await session.execute(ACCOUNTS.update().where(ACCOUNTS.c.member_id == gone).values(erased_at=datetime.now(UTC)))
        await db.commit(session)
    with pytest.raises(ledger.InsufficientPoints, match="The balance is 20 points; 21 are needed"):
        await debit(system, mid, 21)
    with pytest.raises(ledger.MemberErased):
        await debit(system, gone, 5)
    with pytest.raises(ledger.InsufficientPoints, match="The balance is 0 points"):
        await debit(system, nobody, 5)
    with pytest.raises(ValueError, match="positive"):
        await debit(system, mid, 0)
    assert await assert_ledger_balanced(system, mid) == 20
    assert await assert_ledger_balanced(system, gone) == 20


async def test_a_debit_that_waited_for_the_account_spends_the_lots_as_the_holder_left_them(system: System) -> None:
    """The waiting statement's snapshot predates the holder's commit: it must notice (the
    account it locked is newer than the one it sees) and run again, not spend stale lots."""
    mid = uuid.uuid4()
    first, second, third = await seed(system, mid, [(soon(1), 10), (soon(2), 10), (soon(3), 10)])
    db = system.state("rewards").db
    now = datetime.now(UTC)
    async with db.session() as holder:
        held = await ledger.debit(holder, mid, 15, "adjustment", ledger.EntrySource.adjustment(uuid.uuid4()), now)
        waiter = asyncio.create_task(debit(system, mid, 10))
        await asyncio.sleep(0.3)
        assert not waiter.done()  # waiting for the account lock
        await db.commit(holder)
    entry = await waiter
    assert (held.seq, entry.seq, entry.balance_after) == (2, 3, 5)
    assert await consumed(system, held.id) == {first: 10, second: 5}
    assert await consumed(system, entry.id) == {second: 5, third: 5}
    assert await remaining(system, [first, second, third]) == [0, 0, 5]
    assert await assert_ledger_balanced(system, mid) == 5


async def test_a_debit_that_waited_is_refused_on_the_balance_the_holder_left(system: System) -> None:
    mid = uuid.uuid4()
    await seed(system, mid, [(NEVER, 30)])
    db = system.state("rewards").db
    async with db.session() as holder:
        await ledger.debit(
            holder, mid, 25, "adjustment", ledger.EntrySource.adjustment(uuid.uuid4()), datetime.now(UTC)
        )
        waiter = asyncio.create_task(debit(system, mid, 10))
        await asyncio.sleep(0.3)
        await db.commit(holder)
    with pytest.raises(ledger.InsufficientPoints, match="The balance is 5 points"):
        await waiter
    assert await assert_ledger_balanced(system, mid) == 5


async def test_concurrent_debits_never_overspend(system: System) -> None:
    mid = uuid.uuid4()
    await seed(system, mid, [(soon(1), 7), (soon(5), 5), (NEVER, 8)])
    results = await asyncio.gather(*(debit(system, mid, 3) for _ in range(10)), return_exceptions=True)
    entries = [r for r in results if isinstance(r, ledger.Entry)]
    refused = [r for r in results if not isinstance(r, ledger.Entry)]
    assert len(entries) == 6, refused  # 20 points, 3 each
    assert all(isinstance(r, ledger.InsufficientPoints) for r in refused), refused
    assert sorted(e.seq for e in entries) == list(range(2, 8))
    assert await assert_ledger_balanced(system, mid) == 2


async def test_refund_gives_a_debits_points_back_to_their_lots(system: System) -> None:
    mid = uuid.uuid4()
    first, second = await seed(system, mid, [(soon(1), 10), (NEVER, 10)])
    taken = await debit(system, mid, 15)
    db = system.state("rewards").db
    async with db.session() as session:
        back = await ledger.refund(
            session, mid, taken.id, "refund", ledger.EntrySource.adjustment(uuid.uuid4()), datetime.now(UTC)
        )
        await db.commit(session)
    assert (back.seq, back.delta, back.balance_after) == (3, 15, 20)
    assert await remaining(system, [first, second]) == [10, 10]
    assert await assert_ledger_balanced(system, mid) == 20


def test_debit_sql_names_its_source() -> None:
    with pytest.raises(ValueError, match="source"):
        ledger.DebitSql(member_id="$1", entry_id="$2", reason="'x'", now="$3", source_column="rule_id", source_id="$4")
