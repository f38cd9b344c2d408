"""Badges: definitions validated, earned once per member, given by hand, visible to their holder."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.rewards.conftest import Api
from tests.rewards.factories import activity, deliver, local_today, rewards_events
from tests.system import System, member, partner, staff

OPERATOR = staff("operator")


async def create_badge(api: Api, code: str, criteria: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    async with api(OPERATOR) as client:
        response = await client.post(
            "/v1/badges", json={"code": code, "name": code.title(), "description": "", "criteria": criteria} | extra
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def badges_of(api: Api, member_id: uuid.UUID) -> list[dict[str, Any]]:
    async with api(member(member_id)) as client:
        response = await client.get(f"/v1/members/{member_id}/badges")
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_badge_definitions_are_validated(api: Api) -> None:
    await create_badge(api, "chatty", {"event_type": "message_sent", "count": 10})
    async with api(OPERATOR) as client:
        for criteria in (
            {"event_type": "message_sent"},
            {"event_type": "message_sent", "count": 0},
            {"streak_days": 7, "level": "Regular"},
            {"level": "Emperor"},
            {"streak_days": -1},
            {"anything": 1},
        ):
            response = await client.post("/v1/badges", json={"code": "x", "name": "X", "criteria": criteria})
            assert response.status_code == 422, criteria
        assert (await client.post("/v1/badges", json={"code": "Bad Code", "name": "X"})).status_code == 422
        duplicate = await client.post("/v1/badges", json={"code": "chatty", "name": "Again"})
        assert duplicate.status_code == 409
        assert duplicate.json()["type"] == "https://qunyun.dev/problems/badge-exists"
    async with api(member(uuid.uuid4())) as client:
        assert (await client.post("/v1/badges", json={"code": "mine", "name": "Mine"})).status_code == 403
        listed = (await client.get("/v1/badges")).json()["items"]
    assert [(b["code"], b["criteria"]) for b in listed] == [("chatty", {"event_type": "message_sent", "count": 10})]


async def test_count_badges_are_awarded_once(system: System, api: Api) -> None:
    await create_badge(api, "chatty", {"event_type": "message_sent", "count": 3})
    mid, community = uuid.uuid4(), uuid.uuid4()
    await deliver(system, *[activity(mid, community, "message_sent") for _ in range(2)])
    assert await badges_of(api, mid) == []
    await deliver(system, *[activity(mid, community, "message_sent") for _ in range(2)])
    await deliver(system, activity(mid, community, "message_sent"))
    (badge,) = await badges_of(api, mid)
    assert (badge["code"], badge["manual"]) == ("chatty", False)
    assert badge["awarded_at"]
    (event,) = await rewards_events(system, "rewards.badge_awarded")
    assert (event["member_id"], event["badge_code"]) == (str(mid), "chatty")


async def test_streak_and_level_badges(system: System, api: Api) -> None:
    await create_badge(api, "three_days", {"streak_days": 3})
    await create_badge(api, "regular", {"level": "Regular"})
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, *[activity(mid, community, local_date=today - timedelta(days=d)) for d in (2, 1)])
    assert await badges_of(api, mid) == []
    await deliver(system, activity(mid, community, local_date=today))
    assert [b["code"] for b in await badges_of(api, mid)] == ["three_days"]
    await deliver(system, *[activity(mid, community, "invite_accepted") for _ in range(5)])  # 115 lifetime
    assert {b["code"] for b in await badges_of(api, mid)} == {"three_days", "regular"}
    await deliver(system, activity(mid, community, "invite_accepted"))
    assert len(await rewards_events(system, "rewards.badge_awarded")) == 2


async def test_a_badge_defined_later_is_earned_on_the_next_qualifying_activity(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    await deliver(system, *[activity(mid, community, "poll_voted") for _ in range(3)])
    await create_badge(api, "voter", {"event_type": "poll_voted", "count": 2})
    await deliver(system, activity(mid, community, "poll_voted"))
    assert [b["code"] for b in await badges_of(api, mid)] == ["voter"]


async def test_operators_award_badges_by_hand_once(system: System, api: Api) -> None:
    await create_badge(api, "helper", None)
    mid = uuid.uuid4()
    async with api(OPERATOR) as client:
        first = await client.post(f"/v1/members/{mid}/badges", json={"code": "helper"})
        again = await client.post(f"/v1/members/{mid}/badges", json={"code": "helper"})
        missing = await client.post(f"/v1/members/{mid}/badges", json={"code": "nope"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["awarded_at"] == first.json()["awarded_at"]
    assert first.json()["manual"] is True
    assert missing.status_code == 404
    assert len(await rewards_events(system, "rewards.badge_awarded")) == 1
    async with api(partner("rewards:write")) as client:
        assert (await client.post(f"/v1/members/{mid}/badges", json={"code": "helper"})).status_code == 200
    async with api(member(mid)) as client:
        assert (await client.post(f"/v1/members/{mid}/badges", json={"code": "helper"})).status_code == 403


async def test_members_see_only_their_own_badges(api: Api) -> None:
    await create_badge(api, "helper", None)
    mid, other = uuid.uuid4(), uuid.uuid4()
    async with api(OPERATOR) as client:
        await client.post(f"/v1/members/{mid}/badges", json={"code": "helper"})
        assert len((await client.get(f"/v1/members/{mid}/badges")).json()["items"]) == 1
    async with api(member(other)) as client:
        assert (await client.get(f"/v1/members/{mid}/badges")).status_code == 404
