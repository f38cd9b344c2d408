"""Partner webhooks end to end in-process: endpoints API, fan-out, signing, retries,
disabling, rotation, replay, against a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
import pytest_asyncio
import sqlalchemy as sa
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.common.contracts import PUBLISHED_EVENT_TYPES
from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.members import MemberCreated, MemberErased, MemberUpdated
from services.common.db import utcnow
from services.gateway.webhooks.models import deliveries, endpoints
from tests.gateway.webhook_support import (
    Received,
    Receiver,
    activity_event,
    admin_client,
    always,
    create_endpoint,
    event,
    fail_first,
    free_port,
    member_event,
    number_of,
    publish,
    sample,
    worker,
)
from tests.system import System

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture
async def fast_retries(system: System) -> AsyncIterator[System]:
    """Retries with no delay (schedule `0,0,0`: four attempts in all)."""
    delivery_worker = worker(system)
    saved = delivery_worker.delays
    delivery_worker.delays = (0, 0, 0)
    try:
        yield system
    finally:
        delivery_worker.delays = saved


async def gateway_db_execute(system: System, statement: sa.Executable) -> None:
    async with system.state("gateway").db.engine.begin() as conn:
        await conn.execute(statement)


# Endpoints API -------------------------------------------------------------------------


async def test_create_endpoint_shows_secret_once(system: System) -> None:
    async with await admin_client(system) as client:
        created = await client.post(
            "/v1/webhook-endpoints",
            json={"url": "https://example.com/hooks", "event_types": ["member.created"], "description": "CRM"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret"].startswith("whsec_")
        assert body["disabled"] is False
        assert body["event_types"] == ["member.created"]
        assert body["description"] == "CRM"
        Webhook(body["secret"])  # a valid Standard Webhooks secret

        fetched = await client.get(f"/v1/webhook-endpoints/{body['id']}")
        assert fetched.status_code == 200
        assert "secret" not in fetched.json()
        listed = await client.get("/v1/webhook-endpoints")
        assert [e["id"] for e in listed.json()["items"]] == [body["id"]]
        assert "secret" not in listed.json()["items"][0]

    # Stored encrypted, never in clear.
    async with system.state("gateway").db.engine.connect() as conn:
        stored = (await conn.execute(sa.select(endpoints.c.secret_ciphertext))).scalar_one()
    assert body["secret"] not in stored
    assert body["secret"].removeprefix("whsec_") not in stored


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"url": "https://example.com/h", "event_types": ["member.nope"]}, "event_types"),
        ({"url": "https://example.com/h", "event_types": ["webhook.test"]}, "event_types"),
        ({"url": "https://example.com/h", "event_types": []}, "event_types"),
        ({"url": "ftp://example.com/h", "event_types": ["member.created"]}, "url"),
        ({"url": "https://example.com/h"}, "event_types"),
        ({"url": "https://example.com/h", "event_types": ["member.created"], "colour": "red"}, "colour"),
    ],
)
async def test_invalid_endpoint_is_422_and_nothing_stored(system: System, payload: dict[str, Any], where: str) -> None:
    async with await admin_client(system) as client:
        response = await client.post("/v1/webhook-endpoints", json=payload)
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert any(where in err["loc"] for err in response.json()["errors"])
        assert (await client.get("/v1/webhook-endpoints")).json()["items"] == []


async def test_endpoints_need_an_admin(system: System) -> None:
    async with await admin_client(system, who=None) as anonymous:
        assert (await anonymous.get("/v1/webhook-endpoints")).status_code == 401
    async with await admin_client(system, who="operator") as operator:
        response = await operator.post(
            "/v1/webhook-endpoints", json={"url": "https://example.com/h", "event_types": ["*"]}
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM


async def test_update_list_pages_and_delete(system: System) -> None:
    async with await admin_client(system) as client:
        ids = [(await create_endpoint(client, f"https://example.com/{i}", ["*"]))[0] for i in range(3)]
        first = (await client.get("/v1/webhook-endpoints", params={"limit": 2})).json()
        second = (await client.get("/v1/webhook-endpoints", params={"limit": 2, "cursor": first["next_cursor"]})).json()
        assert {e["id"] for e in first["items"] + second["items"]} == set(ids)
        assert second["next_cursor"] is None

        patched = await client.patch(
            f"/v1/webhook-endpoints/{ids[0]}",
            json={"event_types": ["member.created", "member.erased"], "description": "new", "disabled": True},
        )
        assert patched.status_code == 200
        assert patched.json()["event_types"] == ["member.created", "member.erased"]
        assert patched.json()["disabled"] is True
        assert patched.json()["disabled_reason"] == "manual"
        bad = await client.patch(f"/v1/webhook-endpoints/{ids[0]}", json={"event_types": ["nope"]})
        assert bad.status_code == 422
        assert (await client.get(f"/v1/webhook-endpoints/{ids[0]}")).json()["description"] == "new"

        assert (await client.delete(f"/v1/webhook-endpoints/{ids[1]}")).status_code == 204
        missing = await client.get(f"/v1/webhook-endpoints/{ids[1]}")
        assert missing.status_code == 404
        assert missing.json()["type"] == "https://qunyun.dev/problems/webhook-endpoint-not-found"
        assert (await client.delete(f"/v1/webhook-endpoints/{uuid.uuid4()}")).status_code == 404


# Delivery -------------------------------------------------------------------------------


async def test_events_are_fanned_out_signed_and_logged(system: System) -> None:
    async with Receiver() as receiver, await admin_client(system) as client:
        members_id, members_secret = await create_endpoint(client, receiver.url, ["member.created"])
        everything_id, everything_secret = await create_endpoint(client, receiver.url, ["*"])
        member_id = str(uuid.uuid4())
        created = event(sample(MemberCreated, member_id=member_id, external_id="wx-1"))
        activity = event(sample(ActivityRecorded, member_id=member_id))
        result = await publish(system, created, activity)
        assert result == {"applied": 2, "duplicates": 0}
        assert await publish(system, created) == {"applied": 0, "duplicates": 1}  # redelivery: nothing new

        assert await worker(system).drain() == 3
        assert len(receiver.received) == 3
        member_created = receiver.by_type("member.created")
        assert len(member_created) == 2
        for got in member_created:
            # Each endpoint's own secret verifies its copy (standardwebhooks checks the timestamp too).
            secret = members_secret if _verifies(got, members_secret) else everything_secret
            body = got.verify(secret)
            assert body["type"] == "member.created"
            assert body["data"] == created["data"]
            assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
            assert got.webhook_id == f"msg_{uuid.UUID(created['id']).hex}"
            assert got.headers["Content-Type"] == "application/json"
        (only_activity,) = receiver.by_type("activity.recorded")
        only_activity.verify(everything_secret)
        with pytest.raises(WebhookVerificationError):
            only_activity.verify(members_secret)

        log = (await client.get(f"/v1/webhook-endpoints/{members_id}/deliveries")).json()
        (delivery,) = log["items"]
        assert delivery["status"] == "succeeded"
        assert delivery["event_type"] == "member.created"
        assert delivery["webhook_id"] == member_created[0].webhook_id
        (attempt,) = delivery["attempts"]
        assert attempt["status_code"] == 200
        assert attempt["error"] is None
        assert attempt["latency_ms"] >= 0
        one = (await client.get(f"/v1/webhook-deliveries/{delivery['id']}")).json()
        assert one["payload"]["data"]["member_id"] == member_id
        assert len((await client.get(f"/v1/webhook-endpoints/{everything_id}/deliveries")).json()["items"]) == 2


def _verifies(got: Received, secret: str) -> bool:
    try:
        got.verify(secret)
    except WebhookVerificationError:
        return False
    return True


async def test_fan_out_is_set_based(system: System) -> None:
    """A batch of 100 events for 3 endpoints costs a constant number of statements."""
    async with await admin_client(system) as client:
        for i in range(3):
            await create_endpoint(client, f"https://example.com/{i}", ["activity.recorded"])
    statements: list[str] = []
    engine = system.state("gateway").db.engine.sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        await publish(system, *(activity_event(n) for n in range(100)))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "SELECT", "UPDATE"))]
    assert len(writes) <= 6, writes
    async with system.state("gateway").db.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(deliveries)) == 300


async def test_failing_receiver_gets_the_event_with_the_same_webhook_id(fast_retries: System) -> None:
    system = fast_retries
    async with Receiver(fail_first(2)) as receiver, await admin_client(system) as client:
        endpoint_id, secret = await create_endpoint(client, receiver.url, ["member.updated"])
        await publish(system, event(sample(MemberUpdated, member_id=str(uuid.uuid4()))))
        await worker(system).drain()
        assert len(receiver.received) == 3
        assert len({r.webhook_id for r in receiver.received}) == 1
        assert len({r.headers["webhook-timestamp"] for r in receiver.received}) >= 1
        for got in receiver.received:
            got.verify(secret)
        (delivery,) = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()["items"]
        assert delivery["status"] == "succeeded"
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
        assert delivery["attempts"][0]["error"] == "HTTP 500"
        endpoint = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}")).json()
        assert endpoint["failing_since"] is None  # the success ended the run of failures


async def test_exhausted_delivery_stays_failed_and_can_be_retried(fast_retries: System) -> None:
    system = fast_retries
    async with Receiver(always(500)) as receiver, await admin_client(system) as client:
        endpoint_id, secret = await create_endpoint(client, receiver.url, ["member.erased"])
        await publish(system, event(sample(MemberErased, member_id=str(uuid.uuid4()))))
        await worker(system).drain()
        assert len(receiver.received) == 4  # first attempt + three retries
        (delivery,) = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()["items"]
        assert delivery["status"] == "failed"
        assert delivery["next_attempt_at"] is None
        failed = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params={"status": "failed"})
        assert len(failed.json()["items"]) == 1
        assert (await client.get(f"/v1/webhook-endpoints/{endpoint_id}")).json()["failing_since"] is not None

        receiver.behaviour = always(204)
        retried = await client.post(f"/v1/webhook-deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202
        assert retried.json()["status"] == "pending"
        await worker(system).drain()
        assert len(receiver.received) == 5
        assert len({r.webhook_id for r in receiver.received}) == 1
        receiver.received[-1].verify(secret)
        after = (await client.get(f"/v1/webhook-deliveries/{delivery['id']}")).json()
        assert after["status"] == "succeeded"
        assert [a["trigger"] for a in after["attempts"]] == ["event"] * 4 + ["retry"]
        assert (await client.post(f"/v1/webhook-deliveries/{uuid.uuid4()}/retry")).status_code == 404


async def test_disabled_endpoint_gets_nothing_until_enabled(system: System) -> None:
    async with Receiver() as receiver, await admin_client(system) as client:
        endpoint_id, _ = await create_endpoint(client, receiver.url, ["member.created"])
        await publish(system, member_event())  # pending, not sent
        await client.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"disabled": True})
        await publish(system, member_event())  # not even queued
        assert await worker(system).drain() == 0
        assert receiver.received == []
        test = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/test")
        assert test.status_code == 409

        await client.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"disabled": False})
        await worker(system).drain()
        assert len(receiver.received) == 1  # the one queued before disabling


async def test_rotation_signs_with_new_and_old_secret_during_grace(system: System) -> None:
    async with Receiver() as receiver, await admin_client(system) as client:
        endpoint_id, old_secret = await create_endpoint(client, receiver.url, ["member.created"])
        rotated = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret")
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != old_secret
        grace = datetime.fromisoformat(rotated.json()["secret_rotated_until"])
        assert timedelta(hours=23) < grace - datetime.now(UTC) <= timedelta(hours=24)

        await publish(system, member_event())
        await worker(system).drain()
        (during,) = receiver.received
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        during.verify(new_secret)
        during.verify(old_secret)

        # Grace over: only the new secret signs.
        await gateway_db_execute(
            system, endpoints.update().values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
        await publish(system, member_event())
        await worker(system).drain()
        after = receiver.received[1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        after.verify(new_secret)
        with pytest.raises(WebhookVerificationError):
            after.verify(old_secret)


async def test_gone_disables_at_once_and_tells_other_endpoints(fast_retries: System) -> None:
    system = fast_retries
    async with (
        Receiver(always(410)) as gone,
        Receiver() as watcher,
        await admin_client(system) as client,
    ):
        gone_id, _ = await create_endpoint(client, gone.url, ["*"])
        _, watcher_secret = await create_endpoint(client, watcher.url, ["webhook.endpoint_disabled"])
        await publish(system, *(member_event() for _ in range(2)))
        await worker(system).drain()
        assert 1 <= len(gone.received) <= 2  # no retry after a 410 (two may be in flight at once)
        endpoint = (await client.get(f"/v1/webhook-endpoints/{gone_id}")).json()
        assert endpoint["disabled"] is True
        assert endpoint["disabled_reason"] == "gone"
        (notice,) = watcher.received
        body = notice.verify(watcher_secret)
        assert body["type"] == "webhook.endpoint_disabled"
        assert body["data"]["endpoint_id"] == gone_id
        assert body["data"]["reason"] == "gone"
        assert all(
            d["status"] in ("failed", "pending")
            for d in (await client.get(f"/v1/webhook-endpoints/{gone_id}/deliveries")).json()["items"]
        )


async def test_endpoint_failing_for_days_is_disabled(fast_retries: System) -> None:
    system = fast_retries
    async with Receiver(always(502)) as failing, Receiver() as watcher, await admin_client(system) as client:
        failing_id, _ = await create_endpoint(client, failing.url, ["member.created", "webhook.endpoint_disabled"])
        await create_endpoint(client, watcher.url, ["webhook.endpoint_disabled"])
        await gateway_db_execute(
            system,
            endpoints.update()
            .where(endpoints.c.id == uuid.UUID(failing_id))
            .values(failing_since=utcnow() - timedelta(days=5, minutes=1)),
        )
        await publish(system, member_event())
        await worker(system).drain()
        assert len(failing.received) == 1  # disabled after that failure: no more attempts
        endpoint = (await client.get(f"/v1/webhook-endpoints/{failing_id}")).json()
        assert endpoint["disabled"] is True
        assert endpoint["disabled_reason"] == "failing"
        (notice,) = watcher.received
        assert json.loads(notice.body)["data"]["reason"] == "failing"
        # Re-enabling clears the failure streak and resumes the parked delivery.
        failing.behaviour = always(200)
        await client.patch(f"/v1/webhook-endpoints/{failing_id}", json={"disabled": False})
        await worker(system).drain()
        assert len(failing.received) == 2
        assert (await client.get(f"/v1/webhook-endpoints/{failing_id}")).json()["failing_since"] is None


async def test_retry_after_is_honoured(system: System) -> None:
    async with Receiver(always(429, {"Retry-After": "120"})) as receiver, await admin_client(system) as client:
        endpoint_id, _ = await create_endpoint(client, receiver.url, ["member.created"])
        await publish(system, member_event())
        before = datetime.now(UTC)
        await worker(system).drain()
        assert len(receiver.received) == 1
        (delivery,) = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()["items"]
        assert delivery["status"] == "pending"
        assert datetime.fromisoformat(delivery["next_attempt_at"]) >= before + timedelta(seconds=119)
        assert delivery["attempts"][0]["status_code"] == 429


async def test_test_message_and_replay_keep_webhook_ids(system: System) -> None:
    async with Receiver() as receiver, await admin_client(system) as client:
        endpoint_id, secret = await create_endpoint(client, receiver.url, ["activity.recorded"])
        test = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/test")
        assert test.status_code == 202
        assert test.json()["event_type"] == "webhook.test"
        await worker(system).drain()
        (probe,) = receiver.received
        assert probe.verify(secret)["type"] == "webhook.test"

        old = activity_event(1)
        old["occurred_at"] = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        recent = [activity_event(n) for n in (2, 3)]
        await publish(system, old, *recent)
        await worker(system).drain()
        first_ids = {number_of(json.loads(r.body)): r.webhook_id for r in receiver.by_type("activity.recorded")}
        assert set(first_ids) == {1, 2, 3}

        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        replayed = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/replay", json={"since": since})
        assert replayed.status_code == 202
        assert replayed.json()["replayed"] == 3  # the two recent events and the test message
        await worker(system).drain()
        again = receiver.received[4:]
        assert len(again) == 3
        for got in again:
            body = got.verify(secret)
            if body["type"] == "activity.recorded":
                assert got.webhook_id == first_ids[number_of(body)]
                assert number_of(body) in (2, 3)

        naive = await client.post(f"/v1/webhook-endpoints/{endpoint_id}/replay", json={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
        missing = await client.post(f"/v1/webhook-endpoints/{uuid.uuid4()}/replay", json={"since": since})
        assert missing.status_code == 404


async def test_delivery_log_pages(system: System) -> None:
    async with Receiver() as receiver, await admin_client(system) as client:
        endpoint_id, _ = await create_endpoint(client, receiver.url, ["member.created"])
        await publish(system, *(member_event(n) for n in range(5)))
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params=params)).json()
            seen += [d["id"] for d in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5
        bad = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params={"cursor": "!!"})
        assert bad.status_code == 422


async def test_worker_loop_is_woken_by_new_deliveries(system: System) -> None:
    """With the loop running and polling only every 30 s, a new event is still sent at once."""
    delivery_worker = worker(system)
    async with Receiver() as receiver, await admin_client(system) as client:
        await create_endpoint(client, receiver.url, ["member.created"])
        delivery_worker.poll_seconds = 30.0
        delivery_worker.start()
        try:
            await publish(system, member_event())
            await receiver.wait_for(1, timeout=5)
        finally:
            await delivery_worker.stop()
            delivery_worker.poll_seconds = system.settings.relay_interval_ms / 1000


async def test_receiver_down_for_a_while_gets_everything(system: System) -> None:
    delivery_worker = worker(system)
    saved = delivery_worker.delays
    delivery_worker.delays = (1, 1, 1, 1, 1, 1)
    receiver = Receiver(port=free_port())
    async with await admin_client(system) as client:
        endpoint_id, secret = await create_endpoint(client, receiver.url, ["member.created"])
        delivery_worker.poll_seconds = 0.1
        delivery_worker.start()
        try:
            await publish(system, *(member_event(n) for n in range(10)))
            # Nobody listens: attempts fail with connection errors for a while.
            await _wait_until(lambda: _attempted(system), timeout=5)
            await receiver.start()
            await receiver.wait_for(10, timeout=15)
        finally:
            await delivery_worker.stop()
            await receiver.stop()
            delivery_worker.delays = saved
            delivery_worker.poll_seconds = system.settings.relay_interval_ms / 1000
        assert sorted(number_of(r.verify(secret)) for r in receiver.received) == list(range(10))
        log = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()["items"]
        assert all(d["status"] == "succeeded" for d in log)
        assert any(a["error"] and "Cannot connect" in a["error"] for d in log for a in d["attempts"])


async def _attempted(system: System) -> bool:
    async with system.state("gateway").db.engine.connect() as conn:
        return bool(await conn.scalar(sa.select(sa.func.max(deliveries.c.attempt_count))))


async def _wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_webhook_catalogue_is_in_openapi(system: System) -> None:
    """Every published contract is an entry whose body is `{type, timestamp, data}`, whose
    `data` is the contract's schema, and whose example validates against that schema."""
    async with system.anonymous() as client:
        document = (await client.get("/openapi.json")).json()  # the merged, public document
    assert document["openapi"].startswith("3.1")
    hooks = document["webhooks"]
    assert set(hooks) == set(PUBLISHED_EVENT_TYPES)
    for event_type, contract in PUBLISHED_EVENT_TYPES.items():
        entry = hooks[event_type]["post"]
        assert entry["summary"] == contract.summary()
        assert entry["x-schema-version"] == contract.schema_version
        assert f"Schema version {contract.schema_version}." in entry["description"]
        schema_ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
        assert set(schema["required"]) == {"type", "timestamp", "data"}
        assert schema["properties"]["type"]["const"] == event_type
        (example,) = schema["examples"]
        assert example["data"] == contract.example()
        assert contract.model_validate(example["data"])  # the model accepts it, strictly
        validator = jsonschema_rs.validator_for({"$ref": schema_ref, "components": document["components"]})
        errors = [error.message for error in validator.iter_errors(example)]
        assert errors == [], (event_type, errors)  # and so does the published JSON schema
        data_schema = validator.is_valid({**example, "data": {**example["data"], "added_later": 1}})
        assert data_schema, f"{event_type}: partners must be able to accept fields added later"
    assert hooks["rewards.level_changed"]["post"]["x-schema-version"] == 2
    assert hooks["rewards.redemption_created"]["post"]["x-schema-version"] == 2
