"""Outbox, relay and inbox: written with the change, delivered in batches, applied once,
retried per subscriber, and a bad event never blocks a subscriber."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.common.db import utcnow
from services.common.events import emit
from services.common.events.relay import backoff_seconds
from services.feedback.db import kit_tables
from tests.common.kit import KitDatabases, KitSystem, ThingArchived, ThingCreated, kit_system
from tests.system import staff

PENDING, OUTBOX, INBOX = kit_tables.outbox_pending, kit_tables.outbox, kit_tables.inbox


def envelope(event_id: uuid.UUID, name: str, type_: str = "thing.created") -> dict[str, Any]:
    return {
        "id": str(event_id),
        "type": type_,
        "source": "feedback",
        "occurred_at": "2026-11-21T08:00:00Z",
        "data": {"name": name, "count": 0},
    }


# --- outbox ----------------------------------------------------------------------------------


async def test_an_event_emitted_in_a_rolled_back_transaction_leaves_nothing(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things/rolled-back", json={"name": "ghost"})
    assert response.status_code == 409
    async with kit.db().session() as session:
        await emit(session, ThingCreated(name="ghost-2"))
        await session.rollback()
    assert await kit.rows(OUTBOX) == []
    assert await kit.pending() == []
    await kit.relay.drain()
    assert sum(kit.transport.posts.values()) == 0


async def test_emit_writes_one_pending_row_per_interested_subscriber(kit: KitSystem) -> None:
    async with kit.db().session() as session:
        created = await emit(session, ThingCreated(name="a", at=utcnow(), id=uuid.uuid4()))
        other = await emit(session, ThingArchived(name="a"))
        await session.commit()
    pending = {(row.subscriber, row.event_id) for row in await kit.pending()}
    # members takes thing.created and thing.archived, content only thing.created; the source
    # never gets its own.
    assert pending == {("members", created), ("content", created), ("members", other)}
    (row,) = [r for r in await kit.rows(OUTBOX) if r.id == created]
    assert isinstance(row.data["at"], str)  # JSON-encoded, not a flush error
    assert all(r.attempts == 0 and r.last_error is None for r in await kit.pending())


async def test_a_committed_request_event_reaches_every_subscriber(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "hello"})
    assert response.status_code == 201
    assert await kit.relay.drain() == 2
    (event,) = await kit.rows(OUTBOX)
    assert (await kit.seen("members"))[str(event.id)] == 1
    assert (await kit.seen("content"))[str(event.id)] == 1
    assert await kit.pending() == []


# --- relay: batches ----------------------------------------------------------------------------


async def test_the_relay_posts_many_events_per_request_in_order(kit: KitSystem) -> None:
    ids = await kit.emit(*(f"t{i}" for i in range(10)))
    delivered = await kit.relay.drain()
    assert delivered == 20
    assert kit.transport.posts == {"members": 1, "content": 1}
    assert kit.transport.posted["members"] == {str(i): 1 for i in ids}
    inbox = await kit.rows(INBOX, "members")
    assert {row.event_id for row in inbox} == set(ids)
    assert {row.source for row in inbox} == {"feedback"}
    assert await kit.pending() == []


async def test_batches_are_bounded_by_the_batch_size(kit_dbs: KitDatabases) -> None:
    async with kit_system(kit_dbs, relay_batch_size=4) as kit:
        ids = await kit.emit(*(f"t{i}" for i in range(10)))
        assert await kit.relay.drain() == 20
        assert kit.transport.posts == {"members": 3, "content": 3}
        assert set(kit.transport.posted["content"]) == {str(i) for i in ids}


# --- inbox ---------------------------------------------------------------------------------------


async def test_a_batch_is_applied_in_one_transaction_and_a_handler_failure_undoes_all_of_it(
    kit: KitSystem,
) -> None:
    kit.behaviour["members"].poison_names.add("bad")
    good, bad, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = {"events": [envelope(good, "ok"), envelope(bad, "bad"), envelope(late, "ok2")]}
    async with kit.client(service="members") as client:
        response = await client.post("/internal/events", json=batch)
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "https://qunyun.dev/problems/event-handler-failed"
    assert (body["event_id"], body["index"], body["event_type"]) == (str(bad), 1, "thing.created")
    assert await kit.rows(INBOX, "members") == []
    assert await kit.seen("members") == {}  # the first event's effect was rolled back too


async def test_a_redelivered_event_is_applied_once(kit: KitSystem) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with kit.client(service="members") as client:
        one = await client.post("/internal/events", json={"events": [envelope(first, "a")]})
        both = await client.post("/internal/events", json={"events": [envelope(first, "a"), envelope(second, "b")]})
        twice_in_one = await client.post(
            "/internal/events", json={"events": [envelope(second, "b"), envelope(second, "b")]}
        )
    assert one.json() == {"applied": 1, "duplicates": 0}
    assert both.json() == {"applied": 1, "duplicates": 1}
    assert twice_in_one.json() == {"applied": 0, "duplicates": 2}
    assert await kit.seen("members") == {str(first): 1, str(second): 1}
    assert kit.behaviour["members"].applied == {first: 1, second: 1}


async def test_a_duplicate_inside_one_new_batch_is_applied_once(kit: KitSystem) -> None:
    event_id = uuid.uuid4()
    async with kit.client(service="members") as client:
        response = await client.post("/internal/events", json={"events": [envelope(event_id, "a")] * 3})
    assert response.json() == {"applied": 1, "duplicates": 2}
    assert kit.behaviour["members"].applied == {event_id: 1}


async def test_events_without_a_handler_are_recorded_and_acknowledged(kit: KitSystem) -> None:
    event_id = uuid.uuid4()
    async with kit.client(service="members") as client:
        response = await client.post("/internal/events", json={"events": [envelope(event_id, "x", "other.type")]})
    assert response.json() == {"applied": 1, "duplicates": 0}
    assert [row.event_id for row in await kit.rows(INBOX, "members")] == [event_id]


async def test_a_malformed_batch_is_refused_with_field_errors(kit: KitSystem) -> None:
    async with kit.client(service="members") as client:
        response = await client.post("/internal/events", json={"events": [{"id": "nope"}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][:3] == ["body", "events", 0]


# --- relay: retries per subscriber -------------------------------------------------------------


async def test_a_subscriber_that_is_down_does_not_hold_up_the_others(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    ids = await kit.emit("a", "b", "c")
    before = utcnow()
    assert await kit.relay.drain() == 3  # content got everything
    assert set(kit.transport.posted["content"]) == {str(i) for i in ids}
    rows = await kit.pending("members")
    assert len(rows) == 3
    for row in rows:
        assert row.attempts == 1
        assert row.last_error.startswith("unavailable: ConnectError")
        assert row.next_attempt_at > before
    assert await kit.pending("content") == []


async def test_a_subscriber_that_was_down_gets_everything_once_it_returns(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    ids = await kit.emit(*(f"t{i}" for i in range(5)))
    for attempt in range(1, 7):  # far more than relay_max_attempts: outages never park
        await kit.retry_now()
        await kit.relay.drain()
        assert {row.attempts for row in await kit.pending("members")} == {attempt}
    assert await kit.relay.list_parked() == []
    kit.transport.down.clear()
    await kit.settle()
    assert kit.transport.posted["members"] == {str(i): 1 for i in ids}
    assert await kit.seen("members") == {str(i): 1 for i in ids}
    assert await kit.pending() == []


async def test_retries_wait_for_their_backoff(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    await kit.emit("a")
    await kit.relay.drain()
    kit.transport.down.clear()
    posts = kit.transport.posts["members"]
    assert await kit.relay.deliver_once("members") == 0  # paused in this process
    kit.relay._paused_until.clear()
    assert await kit.relay.deliver_once("members") == 0  # and the row is not due yet
    assert kit.transport.posts["members"] == posts
    await kit.retry_now()
    assert await kit.relay.deliver_once("members") == 1


async def test_unattributed_server_errors_count_as_unavailable(kit: KitSystem) -> None:
    kit.transport.intercept = lambda host, events: (
        httpx.Response(503, json={"type": "x", "status": 503}) if host == "members" else None
    )
    await kit.emit("a", "b")
    for _ in range(5):
        await kit.retry_now()
        await kit.relay.drain()
    assert kit.transport.posts["members"] == 5  # one post per pass: no halving for outages
    rows = await kit.pending("members")
    assert {row.attempts for row in rows} == {5}
    assert all(row.last_error.startswith("unavailable: HTTP 503") for row in rows)
    assert await kit.relay.list_parked() == []


# --- poison events --------------------------------------------------------------------------------


async def test_an_event_the_consumer_rejects_does_not_block_the_rest(kit: KitSystem) -> None:
    kit.behaviour["members"].poison_names.add("bad")
    good1, bad, good2 = await kit.emit("good1", "bad", "good2")
    assert await kit.relay.drain() == 5  # 2 to members, 3 to content
    assert await kit.seen("members") == {str(good1): 1, str(good2): 1}
    assert (await kit.seen("content"))[str(bad)] == 1  # other subscribers are unaffected
    (row,) = await kit.pending()
    assert (row.subscriber, row.event_id, row.attempts) == ("members", bad, 1)
    assert row.last_error.startswith("rejected: HTTP 500")
    assert "event-handler-failed" in row.last_error
    assert row.status == "pending"
    # Later events keep flowing while the bad one waits.
    (later,) = await kit.emit("later")
    await kit.relay.drain()
    assert (await kit.seen("members"))[str(later)] == 1


async def test_a_poison_event_is_parked_after_max_attempts_and_can_be_replayed(kit: KitSystem) -> None:
    kit.behaviour["members"].poison_names.add("bad")
    (bad,) = await kit.emit("bad")
    await kit.settle(rounds=6)
    assert kit.behaviour["members"].applied[bad] == 3  # relay_max_attempts in the kit settings
    (parked,) = await kit.relay.list_parked()
    assert (parked.subscriber, parked.event_id, parked.type, parked.attempts) == ("members", bad, "thing.created", 3)
    assert parked.last_error is not None
    assert "cannot handle thing bad" in parked.last_error
    assert await kit.relay.list_parked("content") == []
    # Parked rows are never claimed again...
    posts = kit.transport.posts["members"]
    await kit.settle(rounds=2)
    assert kit.transport.posts["members"] == posts
    # ...until an operator replays them after fixing the consumer.
    kit.behaviour["members"].poison_names.clear()
    assert await kit.relay.unpark("members") == 1
    await kit.relay.drain()
    assert (await kit.seen("members"))[str(bad)] == 1
    assert await kit.pending() == []


async def test_a_flaky_event_succeeds_before_being_parked(kit: KitSystem) -> None:
    kit.behaviour["members"].fail_times["flaky"] = 2
    (flaky,) = await kit.emit("flaky")
    await kit.settle(rounds=5)
    assert (await kit.seen("members"))[str(flaky)] == 1
    assert await kit.relay.list_parked() == []


async def test_an_outage_before_a_rejection_does_not_park_the_event_early(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    kit.behaviour["members"].fail_times["flaky"] = 1
    (flaky,) = await kit.emit("flaky")
    for _ in range(5):
        await kit.retry_now()
        await kit.relay.drain()
    kit.transport.down.clear()
    await kit.retry_now()
    await kit.relay.drain()  # the first contact after the outage is a rejection
    (row,) = await kit.pending("members")
    assert (row.attempts, row.status, row.failure_kind) == (1, "pending", "rejected")
    await kit.settle()
    assert (await kit.seen("members"))[str(flaky)] == 1


async def test_content_errors_naming_no_event_are_narrowed_down_by_halving(kit: KitSystem) -> None:
    def refuse_huge(host: str, events: list[dict[str, Any]]) -> httpx.Response | None:
        if host == "members" and any(e["data"]["name"] == "huge" for e in events):
            return httpx.Response(413, json={"type": "https://qunyun.dev/problems/payload-too-large"})
        return None

    kit.transport.intercept = refuse_huge
    names = [f"t{i}" for i in range(16)]
    names[11] = "huge"
    ids = await kit.emit(*names)
    await kit.relay.drain()
    huge = ids[11]
    assert set(kit.transport.posted["members"]) == {str(i) for i in ids if i != huge}
    assert kit.transport.posts["members"] <= 2 * 4 + 2  # a logarithmic search, not one post per event
    (row,) = await kit.pending("members")
    assert (row.event_id, row.attempts) == (huge, 1)
    assert row.last_error.startswith("rejected: HTTP 413")
    await kit.settle()
    assert [p.event_id for p in await kit.relay.list_parked("members")] == [huge]


async def test_a_validation_error_names_the_event_by_index(kit: KitSystem) -> None:
    def refuse_odd(host: str, events: list[dict[str, Any]]) -> httpx.Response | None:
        for index, event in enumerate(events):
            if host == "members" and event["data"]["name"] == "odd":
                loc = ["body", "events", index, "data"]
                return httpx.Response(422, json={"type": "x", "errors": [{"loc": loc, "msg": "odd"}]})
        return None

    kit.transport.intercept = refuse_odd
    a, odd, b = await kit.emit("a", "odd", "b")
    await kit.relay.drain()
    assert kit.transport.posts["members"] == 2  # the batch, then the batch without the named event
    assert set(kit.transport.posted["members"]) == {str(a), str(b)}
    (row,) = await kit.pending("members")
    assert row.event_id == odd


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (50, 300.0)]:
        delays = [backoff_seconds(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({backoff_seconds(5) for _ in range(20)}) > 1


async def test_relay_passes_record_nothing_when_there_is_nothing_due(kit: KitSystem) -> None:
    await kit.emit("a")
    async with kit.db().session() as session:
        await session.execute(
            PENDING.update().values(next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC)).where(sa.true())
        )
        await session.commit()
    assert await kit.relay.drain() == 0
    assert sum(kit.transport.posts.values()) == 0


@pytest.mark.parametrize("subscriber", ["members", "content"])
async def test_unpark_can_target_single_events(kit: KitSystem, subscriber: str) -> None:
    kit.behaviour[subscriber].poison_names.update({"x", "y"})
    x, y = await kit.emit("x", "y")
    await kit.settle(rounds=6)
    assert {p.event_id for p in await kit.relay.list_parked(subscriber)} == {x, y}
    kit.behaviour[subscriber].poison_names.clear()
    assert await kit.relay.unpark(subscriber, [y]) == 1
    await kit.relay.drain()
    assert {p.event_id for p in await kit.relay.list_parked(subscriber)} == {x}
    assert (await kit.seen(subscriber))[str(y)] == 1
