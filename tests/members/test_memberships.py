"""Joining and leaving communities: idempotent join, leave, rejoin, self-service only."""

from __future__ import annotations

import asyncio
import uuid

from tests.members.conftest import ApiFactory
from tests.members.factories import OPERATOR, create_community, create_member, join, outbox_events
from tests.system import System, member, partner


async def test_join_is_idempotent_and_leave_works(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        someone = await create_member(client)
        first = await join(client, community["id"], someone["id"])
        second = await join(client, community["id"], someone["id"])
        listed = await client.get("/v1/members", params={"community_id": community["id"]})
        left = await client.delete(f"/v1/communities/{community['id']}/members/{someone['id']}")
        left_again = await client.delete(f"/v1/communities/{community['id']}/members/{someone['id']}")
        after = await client.get("/v1/members", params={"community_id": community["id"]})
        rejoined = await join(client, community["id"], someone["id"])
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == first.json()
    assert [m["id"] for m in listed.json()["items"]] == [someone["id"]]
    assert left.status_code == 204
    assert left_again.status_code == 404
    assert after.json()["items"] == []
    assert rejoined.status_code == 201
    assert rejoined.json()["joined_at"] == first.json()["joined_at"]  # cohorts keep the first join
    joined_events = await outbox_events(system, "member.joined_community")
    left_events = await outbox_events(system, "member.left_community")
    assert [e["member_id"] for e in joined_events] == [someone["id"], someone["id"]]
    assert joined_events[0]["community_id"] == community["id"]
    assert set(left_events[0]) == {"member_id", "community_id", "left_at"}


async def test_member_joins_and_leaves_only_for_itself(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        alice = await create_member(client)
        bob = await create_member(client)
        await join(client, community["id"], bob["id"])
    async with await api(member(alice["id"])) as client:
        own = await join(client, community["id"], alice["id"])
        other = await join(client, community["id"], bob["id"])
        other_leave = await client.delete(f"/v1/communities/{community['id']}/members/{bob['id']}")
        backdated = await client.post(
            f"/v1/communities/{community['id']}/members",
            json={"member_id": alice["id"], "joined_at": "2020-01-01T00:00:00Z"},
        )
        mine = await client.get(f"/v1/members/{alice['id']}/communities")
        own_leave = await client.delete(f"/v1/communities/{community['id']}/members/{alice['id']}")
    assert own.status_code == 201
    assert other.status_code == 404
    assert other_leave.status_code == 404
    assert backdated.status_code == 403
    assert [m["community_id"] for m in mine.json()] == [community["id"]]
    assert own_leave.status_code == 204


async def test_join_unknowns_are_404_and_bad_body_422(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
    async with await api(partner("members:write")) as client:
        someone = await create_member(client)
        no_community = await join(client, str(uuid.uuid4()), someone["id"])
        no_member = await join(client, community["id"], str(uuid.uuid4()))
        bad = await client.post(f"/v1/communities/{community['id']}/members", json={"member_id": "x"})
    assert no_community.status_code == 404
    assert no_member.status_code == 404
    assert bad.status_code == 422


async def test_concurrent_joins_make_one_membership(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        someone = await create_member(client)
        answers = await asyncio.gather(*(join(client, community["id"], someone["id"]) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len(await outbox_events(system, "member.joined_community")) == 1
