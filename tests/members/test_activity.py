"""`/v1/events`: single and batch ingest, idempotent ids, rollups, `activity.recorded`."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.common.db import table_of
from services.members.activity.models import Activity, ActivityDaily, ActivityHourly
from tests.members.conftest import ApiFactory
from tests.members.factories import OPERATOR, create_community, create_member, outbox_events, record
from tests.system import System, member, partner

WRITER = partner("events:write")


async def rows(system: System, model: type, **where: Any) -> list[Any]:
    table = table_of(model)
    async with system.state("members").db.session() as session:
        query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
        return list((await session.execute(query)).all())


async def setup(api: ApiFactory, zone: str = "Asia/Shanghai") -> tuple[dict[str, Any], dict[str, Any]]:
    async with await api(OPERATOR) as client:
        return await create_community(client, timezone=zone), await create_member(client)


async def test_single_event_is_recorded_once_per_id(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api)
    event_id = str(uuid.uuid4())
    async with await api(WRITER) as client:
        first = await record(client, id=event_id, member_id=someone["id"], community_id=community["id"])
        again = await record(client, id=event_id, member_id=someone["id"], community_id=community["id"])
        no_id = await record(client, external_id=someone["external_id"], community_id=community["id"], type="new_kind")
    assert first.status_code == 202
    assert first.json() == {"id": event_id, "duplicate": False}
    assert again.status_code == 202
    assert again.json() == {"id": event_id, "duplicate": True}
    assert no_id.status_code == 202
    assert no_id.json()["duplicate"] is False
    assert no_id.json()["id"] != event_id
    recorded = await rows(system, Activity, member_id=uuid.UUID(someone["id"]))
    assert sorted(r.type for r in recorded) == ["check_in", "new_kind"]  # unknown types are kept
    assert len(await outbox_events(system, "activity.recorded")) == 2


async def test_activity_recorded_payload_is_exact(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api, zone="Asia/Shanghai")
    event_id = str(uuid.uuid4())
    async with await api(WRITER) as client:
        response = await record(
            client,
            id=event_id,
            member_id=someone["id"],
            community_id=community["id"],
            type="message_sent",
            occurred_at="2026-01-01T16:30:00+00:00",
            properties={"channel": "wechat", "length": 12},
        )
    assert response.status_code == 202
    (data,) = await outbox_events(system, "activity.recorded")
    assert data == {
        "activity_id": event_id,
        "member_id": someone["id"],
        "community_id": community["id"],
        "type": "message_sent",
        "occurred_at": "2026-01-01T16:30:00Z",
        "local_date": "2026-01-02",  # 00:30 in Shanghai: the next local day
        "timezone": "Asia/Shanghai",
        "properties": {"channel": "wechat", "length": 12},
    }


async def test_rollups_and_last_active_follow_the_local_day(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api, zone="Asia/Shanghai")
    times = ["2026-01-01T15:59:00Z", "2026-01-01T16:00:00Z", "2026-01-01T16:30:00Z", "2026-01-01T10:00:00Z"]
    async with await api(WRITER) as client:
        for at in times:
            response = await record(client, member_id=someone["id"], community_id=community["id"], occurred_at=at)
            assert response.status_code == 202
    async with await api(OPERATOR) as client:
        fetched = await client.get(f"/v1/members/{someone['id']}")
    assert fetched.json()["last_active_at"] in ("2026-01-01T16:30:00Z", "2026-01-01T16:30:00+00:00")
    cid = uuid.UUID(community["id"])
    daily = {(r.local_date, r.events) for r in await rows(system, ActivityDaily, community_id=cid)}
    assert daily == {(date(2026, 1, 1), 2), (date(2026, 1, 2), 2)}
    hourly = {(r.local_date, r.hour, r.weekday, r.events) for r in await rows(system, ActivityHourly, community_id=cid)}
    assert hourly == {
        (date(2026, 1, 1), 23, 3, 1),  # Thursday 23:59
        (date(2026, 1, 1), 18, 3, 1),  # 10:00Z = 18:00 local
        (date(2026, 1, 2), 0, 4, 2),  # Friday 00:00 and 00:30
    }


async def test_last_active_never_moves_back(api: ApiFactory) -> None:
    community, someone = await setup(api)
    async with await api(WRITER) as client:
        await record(client, member_id=someone["id"], community_id=community["id"], occurred_at="2026-03-01T00:00:00Z")
        await record(client, member_id=someone["id"], community_id=community["id"], occurred_at="2026-02-01T00:00:00Z")
    async with await api(OPERATOR) as client:
        fetched = (await client.get(f"/v1/members/{someone['id']}")).json()
    assert fetched["last_active_at"].startswith("2026-03-01T00:00:00")


async def test_member_reports_only_for_itself(api: ApiFactory, system: System) -> None:
    community, alice = await setup(api)
    async with await api(OPERATOR) as client:
        bob = await create_member(client)
    async with await api(member(alice["id"])) as client:
        own = await record(client, community_id=community["id"])
        own_explicit = await record(client, member_id=alice["id"], community_id=community["id"])
        other = await record(client, member_id=bob["id"], community_id=community["id"])
        other_external = await record(client, external_id=bob["external_id"], community_id=community["id"])
        batch = await client.post("/v1/events/batch", json={"events": [{"type": "x", "community_id": community["id"]}]})
    assert own.status_code == 202
    assert own_explicit.status_code == 202
    assert other.status_code == 404
    assert other_external.status_code == 404
    assert batch.status_code == 403
    recorded = await rows(system, Activity)
    assert {str(r.member_id) for r in recorded} == {alice["id"]}


async def test_single_event_problems(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api)
    async with await api(WRITER) as client:
        unknown_member = await record(client, member_id=str(uuid.uuid4()), community_id=community["id"])
        unknown_external = await record(client, external_id="nobody", community_id=community["id"])
        unknown_community = await record(client, member_id=someone["id"], community_id=str(uuid.uuid4()))
        no_reference = await record(client, community_id=community["id"])
        both = await record(
            client, member_id=someone["id"], external_id=someone["external_id"], community_id=community["id"]
        )
        future = await record(
            client,
            member_id=someone["id"],
            community_id=community["id"],
            occurred_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        )
        naive = await record(
            client, member_id=someone["id"], community_id=community["id"], occurred_at="2026-01-01T00:00:00"
        )
        bad_type = await record(client, member_id=someone["id"], community_id=community["id"], type="has space")
        huge = await record(
            client, member_id=someone["id"], community_id=community["id"], properties={"blob": "x" * 9000}
        )
        nul = await record(client, member_id=someone["id"], community_id=community["id"], properties={"a": "\x00"})
    assert unknown_member.status_code == 404
    assert unknown_member.json()["type"] == "https://qunyun.dev/problems/member-not-found"
    assert unknown_external.status_code == 404
    assert unknown_community.status_code == 404
    assert unknown_community.json()["type"] == "https://qunyun.dev/problems/community-not-found"
    for response in (no_reference, both, future, naive, bad_type, huge, nul):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"]
    assert await rows(system, Activity) == []
    assert await outbox_events(system, "activity.recorded") == []


async def test_batch_accepts_good_items_and_rejects_bad_ones(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api)
    seen_before = str(uuid.uuid4())
    repeated = str(uuid.uuid4())
    async with await api(WRITER) as client:
        await record(client, id=seen_before, member_id=someone["id"], community_id=community["id"])
        cid, mid = community["id"], someone["id"]
        response = await client.post(
            "/v1/events/batch",
            json={
                "events": [
                    {"member_id": mid, "community_id": cid, "type": "check_in"},  # 0 ok
                    {"member_id": str(uuid.uuid4()), "community_id": cid, "type": "check_in"},  # 1 unknown member
                    {"member_id": mid, "community_id": str(uuid.uuid4()), "type": "check_in"},  # 2 unknown community
                    {"member_id": mid, "community_id": cid},  # 3 no type
                    {"id": seen_before, "member_id": mid, "community_id": cid, "type": "check_in"},  # 4 duplicate
                    {"id": repeated, "external_id": someone["external_id"], "community_id": cid, "type": "a"},  # 5 ok
                    {"id": repeated, "member_id": mid, "community_id": cid, "type": "a"},  # 6 duplicate in batch
                    {"member_id": mid, "community_id": cid, "type": "poll_voted", "surprise": 1},  # 7 unknown field
                    "not an object",  # 8
                ]
            },
        )
    assert response.status_code == 422  # a non-object item fails the envelope itself
    async with await api(WRITER) as client:
        response = await client.post(
            "/v1/events/batch",
            json={
                "events": [
                    {"member_id": mid, "community_id": cid, "type": "check_in"},
                    {"member_id": str(uuid.uuid4()), "community_id": cid, "type": "check_in"},
                    {"member_id": mid, "community_id": str(uuid.uuid4()), "type": "check_in"},
                    {"member_id": mid, "community_id": cid},
                    {"id": seen_before, "member_id": mid, "community_id": cid, "type": "check_in"},
                    {"id": repeated, "external_id": someone["external_id"], "community_id": cid, "type": "a"},
                    {"id": repeated, "member_id": mid, "community_id": cid, "type": "a"},
                    {"member_id": mid, "community_id": cid, "type": "poll_voted", "surprise": 1},
                ]
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 2
    rejected = {item["index"]: item["problem"] for item in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 7]
    assert rejected[1]["type"] == "https://qunyun.dev/problems/member-not-found"
    assert rejected[1]["status"] == 404
    assert rejected[2]["type"] == "https://qunyun.dev/problems/community-not-found"
    assert rejected[3]["status"] == 422
    assert rejected[3]["errors"][0]["loc"] == ["type"]
    assert rejected[7]["errors"][0]["loc"] == ["surprise"]
    assert len(await rows(system, Activity)) == 3
    assert len(await outbox_events(system, "activity.recorded")) == 3


async def test_batch_limits_and_roles(api: ApiFactory) -> None:
    community, someone = await setup(api)
    item = {"member_id": someone["id"], "community_id": community["id"], "type": "check_in"}
    async with await api(WRITER) as client:
        too_many = await client.post("/v1/events/batch", json={"events": [item] * 1001})
        empty = await client.post("/v1/events/batch", json={"events": []})
        full = await client.post("/v1/events/batch", json={"events": [item] * 1000})
    async with await api(partner("members:write")) as client:
        wrong_scope = await client.post("/v1/events/batch", json={"events": [item]})
    async with await api(OPERATOR) as client:
        operator = await client.post("/v1/events/batch", json={"events": [item]})
    assert too_many.status_code == 422
    assert empty.status_code == 422
    assert full.status_code == 200
    assert full.json()["accepted"] == 1000
    assert wrong_scope.status_code == 403
    assert operator.status_code == 200


async def test_fifty_concurrent_posts_of_one_id_record_once(api: ApiFactory, system: System) -> None:
    community, someone = await setup(api)
    event_id = str(uuid.uuid4())
    async with await api(WRITER) as client:
        answers = await asyncio.gather(
            *(record(client, id=event_id, member_id=someone["id"], community_id=community["id"]) for _ in range(50))
        )
    assert {a.status_code for a in answers} == {202}
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 49
    assert len(await rows(system, Activity)) == 1
    assert len(await outbox_events(system, "activity.recorded")) == 1
    (daily,) = await rows(system, ActivityDaily)
    assert daily.events == 1


async def test_concurrent_overlapping_batches_neither_deadlock_nor_double(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        people = [await create_member(client) for _ in range(20)]
    events = [
        {"id": str(uuid.uuid4()), "member_id": p["id"], "community_id": community["id"], "type": "check_in"}
        for p in people
        for _ in range(5)
    ]
    batches = []
    for _ in range(8):  # every batch holds every event, in its own order
        shuffled = events[:]
        random.shuffle(shuffled)
        batches.append(shuffled)
    async with await api(WRITER) as client:
        answers = await asyncio.gather(*(client.post("/v1/events/batch", json={"events": b}) for b in batches))
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json()["accepted"] for a in answers) == len(events)
    assert sum(a.json()["duplicates"] for a in answers) == len(events) * 7
    assert len(await rows(system, Activity)) == len(events)
    assert sum(r.events for r in await rows(system, ActivityDaily)) == len(events)
    assert sum(r.events for r in await rows(system, ActivityHourly)) == len(events)
    assert len(await outbox_events(system, "activity.recorded")) == len(events)
