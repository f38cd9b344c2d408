"""On Postgres: relay replicas share an outbox without double delivery, and the inbox
applies an event once however many deliveries of it race."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from services.common.db import Database
from services.common.events import Relay
from tests.common.kit import KitDatabases, KitSystem, kit_system


@asynccontextmanager
async def replica(kit: KitSystem) -> AsyncIterator[Relay]:
    """A second relay over the producer's outbox, with its own engine, like another process."""
    outbox = kit.producer.state.outbox
    db = Database(kit.settings.database_url_for("feedback"), kit.settings, info={"outbox": outbox})
    client = httpx.AsyncClient(transport=kit.transport)
    try:
        yield Relay(db, outbox, kit.settings, client)
    finally:
        await client.aclose()
        await db.dispose()


def assert_each_delivered_once(kit: KitSystem, ids: list[uuid.UUID]) -> None:
    expected = {str(i): 1 for i in ids}
    assert kit.transport.posted["members"] == expected
    assert kit.transport.posted["content"] == expected


async def test_two_relays_draining_at_once_deliver_each_event_once(kit_dbs: KitDatabases) -> None:
    async with kit_system(kit_dbs, relay_batch_size=10) as kit, replica(kit) as second:
        kit.transport.latency = 0.005  # let the passes interleave
        ids = await kit.emit(*(f"t{i}" for i in range(200)))
        first_count, second_count = await asyncio.gather(kit.relay.drain(), second.drain())
        assert first_count + second_count == 400
        assert first_count > 0
        assert second_count > 0  # both really worked, side by side
        assert_each_delivered_once(kit, ids)
        assert await kit.pending() == []
        assert len(await kit.seen("members")) == 200


async def test_two_running_relay_loops_deliver_each_event_once(kit_dbs: KitDatabases) -> None:
    async with kit_system(kit_dbs, relay_batch_size=7, relay_interval_ms=20) as kit, replica(kit) as second:
        kit.transport.latency = 0.002
        kit.relay.start()
        second.start()
        try:
            ids: list[uuid.UUID] = []
            for round_ in range(10):  # events keep arriving while the loops run
                ids += await kit.emit(*(f"r{round_}-{i}" for i in range(15)))
                await asyncio.sleep(0.01)
            deadline = time.monotonic() + 30
            while await kit.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await kit.relay.stop()
            await second.stop()
        assert_each_delivered_once(kit, ids)
        assert await kit.pending() == []


async def test_fifty_concurrent_deliveries_of_one_event_apply_it_once(kit: KitSystem) -> None:
    event_id = uuid.uuid4()
    event = {
        "id": str(event_id),
        "type": "thing.created",
        "source": "feedback",
        "occurred_at": "2026-11-21T08:00:00Z",
        "data": {"name": "once", "count": 0},
    }
    async with kit.client(service="members") as client:
        responses = await asyncio.gather(
            *(client.post("/internal/events", json={"events": [event]}) for _ in range(50))
        )
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["applied"] for r in responses) == 1
    assert sum(r.json()["duplicates"] for r in responses) == 49
    assert kit.behaviour["members"].applied[event_id] == 1
    assert await kit.seen("members") == {str(event_id): 1}


async def test_a_crashed_relay_releases_its_claim(kit: KitSystem) -> None:
    """A pass that dies mid-delivery (process killed) leaves its rows due for the others."""
    ids = await kit.emit("a", "b")

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with replica(kit) as stuck:
        stuck.client = httpx.AsyncClient(transport=httpx.MockTransport(hang))
        task = asyncio.create_task(stuck.deliver_once("members"))
        await asyncio.sleep(0.2)  # it holds the rows now
        assert await kit.relay.deliver_once("members") == 0  # skipped, not blocked
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stuck.client.aclose()
    assert await kit.relay.deliver_once("members") == 2
    assert kit.transport.posted["members"] == {str(i): 1 for i in ids}
