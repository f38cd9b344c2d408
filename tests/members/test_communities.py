"""`/v1/communities`: create, list in pages, read, change; time zones are IANA names."""

from __future__ import annotations

import pytest

from tests.members.conftest import ApiFactory
from tests.members.factories import ANALYST, OPERATOR, create_community
from tests.system import member, partner, staff


async def test_create_defaults_to_shanghai_and_reads_back(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        created = await create_community(client, name="Tea lovers", description="Pu'er and more")
        fetched = await client.get(f"/v1/communities/{created['id']}")
    assert created["timezone"] == "Asia/Shanghai"
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert {"id", "name", "description", "timezone"} <= created.keys()


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+8", "../../etc/passwd", "", "asia/shanghai"])
async def test_unknown_time_zone_is_422(api: ApiFactory, zone: str) -> None:
    async with await api(OPERATOR) as client:
        response = await client.post("/v1/communities", json={"name": "x", "timezone": zone})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "timezone"]


async def test_patch_changes_only_given_fields(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        created = await create_community(client, name="Old", description="keep me")
        patched = await client.patch(f"/v1/communities/{created['id']}", json={"timezone": "Europe/Berlin"})
        bad = await client.patch(f"/v1/communities/{created['id']}", json={"name": None})
        again = await client.get(f"/v1/communities/{created['id']}")
    assert patched.status_code == 200
    assert patched.json()["timezone"] == "Europe/Berlin"
    assert patched.json()["description"] == "keep me"
    assert bad.status_code == 422
    assert again.json()["name"] == "Old"


async def test_list_walks_pages_with_cursor(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        made = [await create_community(client, name=f"c{i}") for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/communities", params=params)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [c["id"] for c in reversed(made)]


async def test_bad_cursor_and_limit_are_422(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        assert (await client.get("/v1/communities", params={"cursor": "!!nope"})).status_code == 422
        assert (await client.get("/v1/communities", params={"limit": 500})).status_code == 422


async def test_unknown_community_is_404(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        response = await client.get("/v1/communities/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["type"] == "https://qunyun.dev/problems/community-not-found"


async def test_who_may_write_and_read(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        created = await create_community(client)
    for identity in (ANALYST, partner("members:write"), member("00000000-0000-0000-0000-000000000001")):
        async with await api(identity) as client:
            assert (await client.post("/v1/communities", json={"name": "x"})).status_code == 403
    for identity in (ANALYST, partner("read"), staff("admin")):
        async with await api(identity) as client:
            assert (await client.get(f"/v1/communities/{created['id']}")).status_code == 200
