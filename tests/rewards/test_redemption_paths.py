"""The redemption statement's paths: alone (one statement, committed by itself), in the
request's transaction (with an Idempotency-Key), and waiting for a stock bucket another
transaction holds. Real concurrency: the holder is a second connection."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.rewards.catalog.repository import REDEMPTIONS, STOCK
from tests.rewards.conftest import Api
from tests.rewards.factories import assert_ledger_balanced, earn, points_of, rewards_events
from tests.rewards.test_catalog import create_reward, redeem, stock_of
from tests.system import System


async def test_both_paths_write_the_redemption_its_entry_and_its_event(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    mug = await create_reward(api, cost=30, stock=3)
    alone = await redeem(api, mid, mug["id"])
    keyed = await redeem(api, mid, mug["id"], key="k-1")
    assert (alone.status_code, keyed.status_code) == (201, 201), (alone.text, keyed.text)
    events = await rewards_events(system, "rewards.redemption_created")
    assert [(e["redemption_id"], e["cost"], e["balance"]) for e in events] == [
        (alone.json()["id"], 30, 70),
        (keyed.json()["id"], 30, 40),
    ]
    assert [e["entry_id"] for e in events] == [alone.json()["entry_id"], keyed.json()["entry_id"]]
    assert alone.json()["cost"] == keyed.json()["cost"] == 30
    assert await stock_of(system, mug["id"]) == 1
    assert await assert_ledger_balanced(system, mid) == 40


async def hold_buckets(system: System, reward_id: str) -> tuple[Database, AsyncSession]:
    """A transaction holding every bucket of the reward (as redemptions in flight would)."""
    db = system.state("rewards").db
    holder = db.session()
    await holder.execute(sa.select(STOCK.c.bucket).where(STOCK.c.reward_id == uuid.UUID(reward_id)).with_for_update())
    return db, holder


async def test_a_redemption_waits_for_a_held_bucket_and_takes_it_when_released(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 40)
    prize = await create_reward(api, cost=20, stock=1)
    _, holder = await hold_buckets(system, prize["id"])
    try:
        waiting = asyncio.create_task(redeem(api, mid, prize["id"]))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # every bucket with a unit is held: it waits, not "out of stock"
    finally:
        await holder.rollback()
        await holder.close()
    response = await waiting
    assert response.status_code == 201, response.text
    assert await stock_of(system, prize["id"]) == 0
    assert await assert_ledger_balanced(system, mid) == 20


async def test_a_redemption_waiting_for_a_bucket_emptied_meanwhile_is_out_of_stock(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 40)
    prize = await create_reward(api, cost=20, stock=1)
    db, holder = await hold_buckets(system, prize["id"])
    try:
        waiting = asyncio.create_task(redeem(api, mid, prize["id"]))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        # The holder takes the last unit (as a redemption by someone else would) and commits.
        await holder.execute(
            STOCK.update().where(STOCK.c.reward_id == uuid.UUID(prize["id"]), STOCK.c.remaining > 0).values(remaining=0)
        )
        await db.commit(holder)
    finally:
        await holder.close()
    response = await waiting
    assert (response.status_code, response.json()["type"]) == (409, "https://qunyun.dev/problems/out-of-stock")
    assert (await points_of(api, mid))["balance"] == 40  # the debit went with it
    async with db.session() as session:
        assert (
            await session.scalar(
                sa.select(sa.func.count()).select_from(REDEMPTIONS).where(REDEMPTIONS.c.member_id == mid)
            )
            == 0
        )
    assert await assert_ledger_balanced(system, mid) == 40
