"""`/v1/members`: create, 409 on a taken external id, upsert, read, change, list with filters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.common.db import table_of
from services.members.profiles.models import Member
from tests.members.conftest import ApiFactory
from tests.members.factories import ANALYST, OPERATOR, create_community, create_member, join, outbox_events, record
from tests.system import System, member, partner, staff


async def test_create_and_read_back(api: ApiFactory) -> None:
    async with await api(partner("members:write", "read")) as client:
        created = await create_member(
            client,
            external_id="wx-1001",
            display_name="  Alice Wang ",
            email="Alice@Example.COM",
            phone="+86 138-0013-8000",
            tags=["vip", "beta", "vip"],
            attributes={"plan": "gold", "age": 31, "score": 4.5, "verified": True},
            consent={"marketing": True},
        )
        fetched = await client.get(f"/v1/members/{created['id']}")
    assert fetched.status_code == 200
    body = fetched.json()
    assert body == created
    assert body["external_id"] == "wx-1001"
    assert body["display_name"] == "Alice Wang"
    assert body["email"] == "alice@example.com"
    assert body["phone"] == "+8613800138000"
    assert body["tags"] == ["vip", "beta"]
    assert body["attributes"] == {"plan": "gold", "age": 31, "score": 4.5, "verified": True}
    assert body["consent"]["marketing"] is True
    assert body["consent"]["updated_at"] is not None
    assert body["last_active_at"] is None
    assert body["joined_at"].endswith("Z") or body["joined_at"].endswith("+00:00")


async def test_duplicate_external_id_is_409(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        await create_member(client, external_id="dup-1")
        again = await client.post("/v1/members", json={"external_id": "dup-1", "display_name": "Bob"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "https://qunyun.dev/problems/duplicate-external-id"
    assert len(await outbox_events(system, "member.created")) == 1


async def test_concurrent_creates_of_one_external_id_make_one_member(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/members", json={"external_id": "race-1", "display_name": f"n{i}"}) for i in range(20))
        )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 19
    assert len(await outbox_events(system, "member.created")) == 1


async def test_upsert_creates_then_updates(api: ApiFactory, system: System) -> None:
    async with await api(partner("members:write")) as client:
        first = await client.put("/v1/members/by-external-id/crm-7", json={"display_name": "Carol", "tags": ["a"]})
        second = await client.put(
            "/v1/members/by-external-id/crm-7", json={"email": "carol@example.com", "tags": ["b", "c"]}
        )
        same = await client.put("/v1/members/by-external-id/crm-7", json={"tags": ["b", "c"]})
        missing_name = await client.put("/v1/members/by-external-id/crm-8", json={"tags": ["x"]})
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["display_name"] == "Carol"  # kept: not sent
    assert second.json()["email"] == "carol@example.com"
    assert second.json()["tags"] == ["b", "c"]
    assert same.status_code == 200
    assert missing_name.status_code == 422
    updates = await outbox_events(system, "member.updated")
    assert [u["changed"] for u in updates] == [["email", "tags"]]  # the no-op upsert emitted nothing


async def test_concurrent_upserts_make_one_member(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        answers = await asyncio.gather(
            *(client.put("/v1/members/by-external-id/up-1", json={"display_name": f"n{i}"}) for i in range(10))
        )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_patch_fields_and_merge_attributes(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        created = await create_member(client, email="a@example.com", attributes={"plan": "gold", "city": "SH"})
        patched = await client.patch(
            f"/v1/members/{created['id']}",
            json={"email": None, "phone": "+14155550123", "attributes": {"city": None, "level": 3}},
        )
    assert patched.status_code == 200
    body = patched.json()
    assert body["email"] is None
    assert body["phone"] == "+14155550123"
    assert body["attributes"] == {"plan": "gold", "level": 3}


async def test_patch_to_a_taken_external_id_is_409(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        await create_member(client, external_id="taken")
        other = await create_member(client)
        response = await client.patch(f"/v1/members/{other['id']}", json={"external_id": "taken"})
        after = await client.get(f"/v1/members/{other['id']}")
    assert response.status_code == 409
    assert after.json()["external_id"] == other["external_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+86 abc"}, "phone"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": "bad\x00name"}, "display_name"),
        ({"external_id": "has space"}, "external_id"),
        ({"external_id": "a/b"}, "external_id"),
        ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"attributes": {f"k{i}": i for i in range(51)}}, "attributes"),
        ({"attributes": {"bad key": 1}}, "attributes"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"attributes": {"long": "x" * 501}}, "attributes"),
        ({"consent": {"marketing": "maybe"}}, "consent"),
        ({"joined_at": "2999-01-01T00:00:00Z"}, "joined_at"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_invalid_fields_are_422_and_change_nothing(
    api: ApiFactory, system: System, body: dict[str, object], field: str
) -> None:
    payload = {"external_id": "valid-1", "display_name": "Val", **body}
    async with await api(OPERATOR) as client:
        response = await client.post("/v1/members", json=payload)
        listed = await client.get("/v1/members")
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "https://qunyun.dev/problems/validation-error"
    assert any(field in err["loc"] for err in problem["errors"]), problem
    assert listed.json()["items"] == []
    assert await outbox_events(system, "member.created") == []


async def test_member_sees_and_changes_only_itself(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        alice = await create_member(client)
        bob = await create_member(client)
    async with await api(member(alice["id"])) as client:
        assert (await client.get(f"/v1/members/{alice['id']}")).status_code == 200
        other = await client.get(f"/v1/members/{bob['id']}")
        other_patch = await client.patch(f"/v1/members/{bob['id']}", json={"display_name": "hacked"})
        own_patch = await client.patch(f"/v1/members/{alice['id']}", json={"display_name": "Alice W"})
        own_tags = await client.patch(f"/v1/members/{alice['id']}", json={"tags": ["vip"]})
        listing = await client.get("/v1/members")
        create = await client.post("/v1/members", json={"external_id": "x", "display_name": "x"})
    assert other.status_code == 404
    assert other_patch.status_code == 404
    assert own_patch.status_code == 200
    assert own_patch.json()["display_name"] == "Alice W"
    assert own_tags.status_code == 403
    assert listing.status_code == 403
    assert create.status_code == 403


async def test_role_matrix(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        someone = await create_member(client)
    async with await api(ANALYST) as client:
        assert (await client.get("/v1/members")).status_code == 200
        assert (await client.get(f"/v1/members/{someone['id']}")).status_code == 200
        assert (await client.post("/v1/members", json={"external_id": "y", "display_name": "y"})).status_code == 403
    async with await api(partner("members:read")) as client:
        assert (await client.get(f"/v1/members/{someone['id']}")).status_code == 200
    async with await api(partner("events:write")) as client:
        assert (await client.get(f"/v1/members/{someone['id']}")).status_code == 403
        assert (await client.get("/v1/members")).status_code == 403
        assert (await client.post("/v1/members", json={"external_id": "y", "display_name": "y"})).status_code == 403
    async with await api(staff("reviewer")) as client:
        assert (await client.get(f"/v1/members/{someone['id']}")).status_code == 403


async def test_unknown_member_is_404(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        response = await client.get(f"/v1/members/{uuid.uuid4()}")
        patch = await client.patch(f"/v1/members/{uuid.uuid4()}", json={"display_name": "x"})
    assert response.status_code == 404
    assert patch.status_code == 404
    assert response.json()["type"] == "https://qunyun.dev/problems/member-not-found"


async def test_contact_details_are_encrypted_at_rest(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        created = await create_member(client, email="secret.person@example.com", phone="+8613912345678")
    members = table_of(Member)
    async with system.state("members").db.session() as session:
        row = (await session.execute(sa.select(members).where(members.c.id == uuid.UUID(created["id"])))).one()
        dump = " ".join(str(v) for v in row)
        raw_bytes = bytes(row.email_cipher) + bytes(row.phone_cipher)
    for plaintext in ("secret.person@example.com", "secret.person", "8613912345678", "13912345678"):
        assert plaintext not in dump
        assert plaintext.encode() not in raw_bytes
    assert row.email_cipher[0] == 1  # envelope version
    assert len(row.email_cipher) > 1 + 4 + 12 + 16
    assert len(row.email_index) == 64
    assert row.email_index != row.phone_index


async def test_list_filters(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        alice = await create_member(client, display_name="Alice Zhang", email="alice@example.com", tags=["vip"])
        bob = await create_member(client, display_name="Bob Li", phone="+8613800000001", tags=["vip", "new"])
        carol = await create_member(
            client,
            display_name="Carol 100%",
            joined_at=(datetime.now(UTC) - timedelta(days=60)).isoformat(),
        )
        await join(client, community["id"], alice["id"])
        await join(client, community["id"], carol["id"])
        await record(client, member_id=bob["id"], community_id=community["id"])

        async def ids(**params: str | int) -> set[str]:
            response = await client.get("/v1/members", params=params)
            assert response.status_code == 200, response.text
            return {m["id"] for m in response.json()["items"]}

        assert await ids() == {alice["id"], bob["id"], carol["id"]}
        assert await ids(community_id=community["id"]) == {alice["id"], carol["id"]}
        assert await ids(tag="vip") == {alice["id"], bob["id"]}
        assert await ids(tag="vip", community_id=community["id"]) == {alice["id"]}
        assert await ids(q="ALICE@example.com") == {alice["id"]}
        assert await ids(q="+86 138 0000 0001") == {bob["id"]}
        assert await ids(q="zhang") == {alice["id"]}
        assert await ids(q="100%") == {carol["id"]}
        assert await ids(q="%") == {carol["id"]}
        assert await ids(q=alice["external_id"]) == {alice["id"]}
        assert await ids(inactive_days=30) == {carol["id"]}
        assert (await client.get("/v1/members", params={"inactive_days": 0})).status_code == 422
        assert (await client.get("/v1/members", params={"community_id": "nope"})).status_code == 422


async def test_pagination_walks_every_member_once(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        made = {(await create_member(client))["id"] for _ in range(7)}
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/members", params=params)).json()
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert len(seen) == 7
    assert set(seen) == made


async def test_created_and_updated_events_carry_no_contact_details(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        created = await create_member(client, email="hidden@example.com", phone="+8613800000009", tags=["t"])
        await client.patch(f"/v1/members/{created['id']}", json={"email": "new@example.com", "display_name": "Z"})
    (made,) = await outbox_events(system, "member.created")
    (changed,) = await outbox_events(system, "member.updated")
    assert made["member_id"] == created["id"]
    assert made["external_id"] == created["external_id"]
    assert made["tags"] == ["t"]
    assert changed == {
        "member_id": created["id"],
        "external_id": created["external_id"],
        "changed": ["display_name", "email"],
        "consent": {"marketing": False},  # content keeps a copy for the contact budget
    }
    for event in (made, changed):
        assert "hidden@example.com" not in str(event)
        assert "new@example.com" not in str(event)
        assert "8613800000009" not in str(event)
