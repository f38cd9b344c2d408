"""`/v1/segments`: rules over tags, attributes, communities, join dates and inactivity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects import postgresql

from services.members.segments.schemas import SegmentRule
from services.members.segments.service import rule_conditions
from tests.members.conftest import ApiFactory
from tests.members.factories import ANALYST, OPERATOR, create_community, create_member, join, record
from tests.system import partner


async def segment_ids(client: httpx.AsyncClient, rule: dict[str, Any]) -> set[str]:
    created = await client.post("/v1/segments", json={"name": "s", "rule": rule})
    assert created.status_code == 201, created.text
    response = await client.get(f"/v1/segments/{created.json()['id']}/members")
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["items"]}


async def test_rules_select_the_right_members(api: ApiFactory) -> None:
    long_ago = (datetime.now(UTC) - timedelta(days=90)).isoformat()
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        other_community = await create_community(client)
        gold = await create_member(client, tags=["vip", "beta"], attributes={"plan": "gold", "seats": 5})
        silver = await create_member(client, tags=["vip"], attributes={"plan": "silver", "seats": "5", "ok": True})
        old = await create_member(client, tags=["beta"], attributes={"seats": 5.0, "ok": False}, joined_at=long_ago)
        await join(client, community["id"], gold["id"])
        await join(client, other_community["id"], silver["id"])
        await record(client, member_id=gold["id"], community_id=community["id"])

        assert await segment_ids(client, {}) == {gold["id"], silver["id"], old["id"]}
        assert await segment_ids(client, {"tags": {"any": ["vip"]}}) == {gold["id"], silver["id"]}
        assert await segment_ids(client, {"tags": {"all": ["vip", "beta"]}}) == {gold["id"]}
        assert await segment_ids(client, {"tags": {"any": ["beta", "nope"], "all": ["beta"]}}) == {
            gold["id"],
            old["id"],
        }
        assert await segment_ids(client, {"attributes": {"plan": "gold"}}) == {gold["id"]}
        assert await segment_ids(client, {"attributes": {"seats": 5}}) == {gold["id"], old["id"]}  # not "5"
        assert await segment_ids(client, {"attributes": {"seats": "5"}}) == {silver["id"]}
        assert await segment_ids(client, {"attributes": {"ok": True}}) == {silver["id"]}
        assert await segment_ids(client, {"attributes": {"ok": False}}) == {old["id"]}
        assert await segment_ids(client, {"community_ids": [community["id"], other_community["id"]]}) == {
            gold["id"],
            silver["id"],
        }
        recent = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        assert await segment_ids(client, {"joined_after": recent}) == {gold["id"], silver["id"]}
        assert await segment_ids(client, {"joined_before": recent}) == {old["id"]}
        assert await segment_ids(client, {"inactive_days": 60}) == {old["id"]}
        assert await segment_ids(client, {"tags": {"any": ["vip"]}, "community_ids": [community["id"]]}) == {gold["id"]}


async def test_segment_crud_and_pagination(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        people = {(await create_member(client, tags=["t"]))["id"] for _ in range(5)}
        created = await client.post(
            "/v1/segments", json={"name": " Taggers ", "description": "d", "rule": {"tags": {"any": ["t"]}}}
        )
        segment = created.json()
        renamed = await client.patch(f"/v1/segments/{segment['id']}", json={"name": "Renamed"})
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(f"/v1/segments/{segment['id']}/members", params=params)).json()
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        listed = await client.get("/v1/segments")
        deleted = await client.delete(f"/v1/segments/{segment['id']}")
        gone = await client.get(f"/v1/segments/{segment['id']}")
    assert created.status_code == 201
    assert segment["name"] == "Taggers"
    assert segment["rule"]["tags"] == {"any": ["t"], "all": []}
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["rule"] == segment["rule"]
    assert sorted(seen) == sorted(people)
    assert [s["id"] for s in listed.json()["items"]] == [segment["id"]]
    assert deleted.status_code == 204
    assert gone.status_code == 404


@pytest.mark.parametrize(
    "rule",
    [
        {"tags": {"some": ["x"]}},
        {"attributes": {"bad key": 1}},
        {"attributes": {"k": {"nested": 1}}},
        {"community_ids": ["not-a-uuid"]},
        {"community_ids": []},
        {"inactive_days": 0},
        {"joined_after": "2026-02-01T00:00:00Z", "joined_before": "2026-01-01T00:00:00Z"},
        {"joined_after": "2026-02-01T00:00:00"},
        {"whatever": 1},
    ],
)
async def test_bad_rules_are_422(api: ApiFactory, rule: dict[str, Any]) -> None:
    async with await api(OPERATOR) as client:
        response = await client.post("/v1/segments", json={"name": "bad", "rule": rule})
        listed = await client.get("/v1/segments")
    assert response.status_code == 422
    assert response.json()["errors"]
    assert listed.json()["items"] == []


async def test_segment_roles(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        segment = (await client.post("/v1/segments", json={"name": "s", "rule": {}})).json()
    async with await api(ANALYST) as client:
        assert (await client.get(f"/v1/segments/{segment['id']}/members")).status_code == 200
        assert (await client.post("/v1/segments", json={"name": "s", "rule": {}})).status_code == 403
    async with await api(partner("read", "members:write")) as client:
        assert (await client.get(f"/v1/segments/{segment['id']}")).status_code == 403
    async with await api(OPERATOR) as client:
        assert (await client.get(f"/v1/segments/{uuid.uuid4()}/members")).status_code == 404


def test_rule_compiles_to_one_condition_per_part() -> None:
    rule = SegmentRule.model_validate({"tags": {"any": ["a"], "all": ["b"]}, "attributes": {"p": "x"}})
    conditions = rule_conditions(rule)
    assert len(conditions) == 3
    assert "@>" in str(conditions[2].compile(dialect=postgresql.dialect()))  # JSONB containment
