"""Several delivery workers on one Postgres database: each attempt is sent exactly once,
and a crashed worker's lease is reclaimed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
import sqlalchemy as sa

from services.common.db import Database, utcnow
from services.gateway.webhooks.client import build_partner_client
from services.gateway.webhooks.delivery import DeliveryWorker
from services.gateway.webhooks.models import attempts, deliveries
from tests.gateway.webhook_support import (
    Receiver,
    activity_event,
    admin_client,
    create_endpoint,
    member_event,
    number_of,
    publish,
    worker,
)
from tests.system import System


@pytest_asyncio.fixture
async def second_worker(system: System) -> AsyncIterator[DeliveryWorker]:
    """Another gateway replica's worker: its own engine, client and in-process state."""
    settings = system.settings
    db = Database(settings.database_url_for("gateway"), settings)
    client = build_partner_client(settings)
    try:
        yield DeliveryWorker(db, settings, client, system.state("gateway").webhooks.box, name="replica-2")
    finally:
        await client.aclose()
        await db.dispose()


async def test_two_workers_send_each_attempt_exactly_once(system: System, second_worker: DeliveryWorker) -> None:
    first_worker = worker(system)
    async with Receiver() as receiver, await admin_client(system) as client:
        for _ in range(3):
            await create_endpoint(client, receiver.url, ["activity.recorded"])
        await publish(system, *(activity_event(n) for n in range(150)))
        sent = await asyncio.gather(first_worker.drain(), second_worker.drain())

    assert sum(sent) == 450
    assert all(count > 0 for count in sent), sent  # both replicas did part of the work
    per_message = Counter((r.headers["webhook-id"], r.headers["webhook-signature"][:12]) for r in receiver.received)
    assert len(receiver.received) == 450
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 150
    assert set(ids.values()) == {3}  # each message once per endpoint
    assert len(per_message) == 450
    async with system.state("gateway").db.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(attempts)) == 450
        statuses = (
            await conn.execute(sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status))
        ).all()
    assert dict(statuses) == {"succeeded": 450}  # type: ignore[arg-type]


async def test_expired_lease_is_reclaimed_and_the_late_result_ignored(
    system: System, second_worker: DeliveryWorker
) -> None:
    crashed = worker(system)
    async with Receiver() as receiver, await admin_client(system) as client:
        endpoint_id, secret = await create_endpoint(client, receiver.url, ["member.created"])
        await publish(system, member_event(1))

        (job,) = await crashed.claim(10)  # claimed, then the process "dies" before sending
        assert await second_worker.drain() == 0  # leased: nobody else may take it
        async with system.state("gateway").db.engine.begin() as conn:
            await conn.execute(deliveries.update().values(lease_until=utcnow() - timedelta(seconds=1)))
        assert await second_worker.drain() == 1  # the lease expired: reclaimed
        (got,) = receiver.received
        assert number_of(got.verify(secret)) == 1

        # The crashed worker comes back and records a stale outcome: ignored (claim token).
        late = await crashed.send(job)
        await crashed.record([late])
        (delivery,) = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()["items"]
        assert delivery["status"] == "succeeded"
        assert len({json.dumps(r.headers["webhook-id"]) for r in receiver.received}) == 1


async def test_concurrent_claims_never_overlap(system: System, second_worker: DeliveryWorker) -> None:
    """Many claims racing at once: every delivery is leased to exactly one claimer."""
    first_worker = worker(system)
    async with await admin_client(system) as client:
        for i in range(20):
            await create_endpoint(client, f"https://example.com/{i}", ["member.created"])
    await publish(system, *(member_event(n) for n in range(10)))
    claims = await asyncio.gather(*(w.claim(40) for w in [first_worker, second_worker] * 4))
    leased = [job.delivery_id for jobs in claims for job in jobs]
    while more := await second_worker.claim(200):  # rows a racing claim passed over are still due
        leased += [job.delivery_id for job in more]
    assert len(leased) == len(set(leased)) == 200
