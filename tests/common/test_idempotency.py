"""`Idempotency-Key`: replay, conflicts, scoping per caller, release on failure."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from services.common.db import utcnow
from services.common.idempotency import request_fingerprint
from services.feedback.db import kit_tables
from tests.common.kit import KitSystem
from tests.system import partner, staff

KEYS = kit_tables.idempotency_keys


async def things_created(kit: KitSystem) -> int:
    return sum(1 for row in await kit.rows(kit_tables.outbox) if row.type == "thing.created")


async def test_same_key_same_body_replays_the_first_answer(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        first = await client.post("/things", json={"name": "a", "count": 1}, headers={"Idempotency-Key": "k-1"})
        again = await client.post("/things", json={"count": 1, "name": "a"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await things_created(kit) == 1


async def test_same_key_different_body_is_422(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        await client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-2"})
        other = await client.post("/things", json={"name": "b"}, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 422
    assert other.json()["type"] == "https://qunyun.dev/problems/idempotency-key-reused"
    assert await things_created(kit) == 1


async def test_same_key_while_in_flight_is_409(kit: KitSystem) -> None:
    gate = asyncio.Event()
    kit.producer.state.gates["slow"] = gate
    kit.producer.state.entered.clear()
    async with kit.client(staff("operator")) as client:
        first = asyncio.create_task(client.post("/things", json={"name": "slow"}, headers={"Idempotency-Key": "k-3"}))
        await asyncio.wait_for(kit.producer.state.entered.wait(), timeout=10)
        during = await client.post("/things", json={"name": "slow"}, headers={"Idempotency-Key": "k-3"})
        different = await client.post("/things", json={"name": "quick"}, headers={"Idempotency-Key": "k-3"})
        gate.set()
        done = await asyncio.wait_for(first, timeout=10)
        after = await client.post("/things", json={"name": "slow"}, headers={"Idempotency-Key": "k-3"})
    assert during.status_code == 409
    assert during.json()["type"] == "https://qunyun.dev/problems/idempotency-key-in-use"
    assert during.headers["retry-after"] == "1"
    assert different.status_code == 422
    assert done.status_code == 201
    assert after.status_code == 201
    assert after.json() == done.json()
    assert after.headers["idempotent-replayed"] == "true"
    assert await things_created(kit) == 1


async def test_keys_are_scoped_per_caller(kit: KitSystem) -> None:
    alice, bob = staff("operator"), partner("members:write")
    async with kit.client(alice) as as_alice, kit.client(bob) as as_bob:
        a = await as_alice.post("/things", json={"name": "same"}, headers={"Idempotency-Key": "shared"})
        b = await as_bob.post("/things", json={"name": "same"}, headers={"Idempotency-Key": "shared"})
        b_other = await as_bob.post("/things", json={"name": "same"}, headers={"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert b_other.json() == b.json()
    assert await things_created(kit) == 2
    callers = sorted(row.caller for row in await kit.rows(KEYS))
    assert callers == sorted([alice.key, bob.key])


async def test_failed_first_attempt_releases_the_key(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        first = await client.post("/things", json={"name": "conflict"}, headers={"Idempotency-Key": "k-4"})
        assert await kit.rows(KEYS) == []
        second = await client.post("/things", json={"name": "conflict"}, headers={"Idempotency-Key": "k-4"})
        crashed = await client.post("/things", json={"name": "explode"}, headers={"Idempotency-Key": "k-5"})
    # Both attempts ran the action (the same domain error), neither was "in use".
    assert first.json()["type"] == second.json()["type"] == "https://qunyun.dev/problems/thing-conflict"
    assert crashed.status_code == 500
    assert await kit.rows(KEYS) == []
    assert await things_created(kit) == 0


async def test_a_later_failure_in_the_route_releases_the_key_and_undoes_the_effect(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        first = await client.post("/things/fail-after", json={"name": "x"}, headers={"Idempotency-Key": "k-6"})
        second = await client.post("/things/fail-after", json={"name": "x"}, headers={"Idempotency-Key": "k-6"})
    assert first.status_code == second.status_code == 409
    assert second.json()["detail"] == "Refused after the fact."  # ran again, not "in use"
    assert await kit.rows(KEYS) == []
    assert await things_created(kit) == 0


async def test_a_claim_abandoned_by_a_crash_is_taken_over(kit: KitSystem) -> None:
    caller = staff("operator")
    fingerprint = request_fingerprint({"name": "late", "count": 0}, "POST /things")
    async with kit.db().session() as session:
        await session.execute(
            KEYS.insert().values(
                caller=caller.key, key="k-7", request_hash=fingerprint, created_at=utcnow() - timedelta(minutes=5)
            )
        )
        await session.commit()
    async with kit.client(caller) as client:
        response = await client.post("/things", json={"name": "late"}, headers={"Idempotency-Key": "k-7"})
    assert response.status_code == 201
    assert await things_created(kit) == 1
    (row,) = await kit.rows(KEYS)
    assert row.completed_at is not None
    assert row.status_code == 201


async def test_requests_without_a_key_are_not_stored(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        one = await client.post("/things", json={"name": "a"})
        two = await client.post("/things", json={"name": "a"})
        blank = await client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "  "})
        long = await client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "x" * 300})
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert blank.status_code == long.status_code == 422
    assert await kit.rows(KEYS) == []
    assert await things_created(kit) == 2


def test_fingerprint_covers_operation_and_ignores_key_order() -> None:
    assert request_fingerprint({"a": 1, "b": 2}) == request_fingerprint({"b": 2, "a": 1})
    assert request_fingerprint({"a": 1}, "POST /x") != request_fingerprint({"a": 1}, "POST /y")
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


async def test_twenty_concurrent_requests_with_one_key_take_effect_once(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        responses = await asyncio.gather(
            *(client.post("/things", json={"name": "rush"}, headers={"Idempotency-Key": "k-rush"}) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert await things_created(kit) == 1


async def test_concurrent_takeovers_of_an_abandoned_claim_take_effect_once(kit: KitSystem) -> None:
    caller = staff("operator")
    fingerprint = request_fingerprint({"name": "orphan", "count": 0}, "POST /things")
    async with kit.db().session() as session:
        await session.execute(
            KEYS.insert().values(
                caller=caller.key, key="k-8", request_hash=fingerprint, created_at=utcnow() - timedelta(minutes=5)
            )
        )
        await session.commit()
    async with kit.client(caller) as client:
        responses = await asyncio.gather(
            *(client.post("/things", json={"name": "orphan"}, headers={"Idempotency-Key": "k-8"}) for _ in range(10))
        )
    assert {r.status_code for r in responses} <= {201, 409}
    assert await things_created(kit) == 1
    async with kit.db().session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(KEYS)) == 1
