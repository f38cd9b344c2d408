"""Webhook delivery holds no row lock while a partner answers; housekeeping purges the
webhook log after QUNYUN_WEBHOOK_RETENTION_DAYS and keeps what is still to be sent."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import sqlalchemy as sa

from services.common.db import utcnow
from services.gateway.webhooks.delivery import DeliveryWorker
from services.gateway.webhooks.models import attempts, deliveries, messages
from tests.gateway.webhook_support import Receiver, admin_client, create_endpoint, member_event, publish, worker
from tests.system import System


async def test_no_delivery_holds_a_row_lock_while_its_call_is_in_flight(system: System) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()

    async def partner(request: httpx.Request) -> httpx.Response:
        entered.set()
        await gate.wait()
        return httpx.Response(200)

    gateway = system.state("gateway")
    client = httpx.AsyncClient(transport=httpx.MockTransport(partner))
    blocked = DeliveryWorker(gateway.db, system.settings, client, gateway.webhooks.box, name="blocked")
    async with await admin_client(system) as admin:
        await create_endpoint(admin, "http://127.0.0.1:9/hooks", ["member.created"])
    await publish(system, member_event(1))
    drain = asyncio.create_task(blocked.drain())
    try:
        await asyncio.wait_for(entered.wait(), 5)
        async with gateway.db.session() as session:  # the call is in flight: the row is free
            status = await session.scalar(sa.select(deliveries.c.status).with_for_update(nowait=True))
            await session.rollback()
        assert status == "sending"  # leased, not locked
    finally:
        gate.set()
        assert await drain == 1
        await client.aclose()
    async with gateway.db.session() as session:
        assert await session.scalar(sa.select(deliveries.c.status)) == "succeeded"


async def test_housekeeping_purges_old_finished_messages_and_attempts(system: System) -> None:
    gateway = system.state("gateway")
    async with Receiver() as receiver, await admin_client(system) as client:
        await create_endpoint(client, receiver.url, ["member.created"])
        await publish(system, *(member_event(n) for n in range(3)))
        assert await worker(system).drain() == 3
    async with gateway.db.session() as session:
        old = utcnow() - timedelta(days=31)
        first, second, third = (await session.scalars(sa.select(messages.c.id).order_by(messages.c.id))).all()
        # Two old messages: one finished, one still waiting to be sent (its endpoint disabled).
        await session.execute(messages.update().where(messages.c.id.in_([first, second])).values(created_at=old))
        await session.execute(attempts.update().values(attempted_at=old))
        await session.execute(
            deliveries.update().where(deliveries.c.message_id == second).values(status="pending", next_attempt_at=None)
        )
        await session.commit()

    counts = await gateway.housekeeping.purge()

    assert counts["webhook_attempts"] == 3
    assert counts["webhook_messages"] == 1
    async with gateway.db.session() as session:
        assert set(await session.scalars(sa.select(messages.c.id))) == {second, third}
        assert set(await session.scalars(sa.select(deliveries.c.message_id))) == {second, third}
