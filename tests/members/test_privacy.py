"""Erasure, export and resolve: personal data goes, counts stay, and only the right callers see it."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from services.common.db import table_of
from services.members.activity.models import Activity, ActivityDaily
from services.members.db import kit_tables
from services.members.profiles.models import Member, MemberTag
from tests.members.conftest import ApiFactory
from tests.members.factories import ADMIN, OPERATOR, create_community, create_member, join, outbox_events, record
from tests.system import System, member, partner, staff


async def test_erasure_removes_personal_data_and_keeps_counts(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        alice = await create_member(
            client,
            external_id="alice-ext",
            display_name="Alice Secret",
            email="alice.secret@example.com",
            phone="+8613811112222",
            tags=["vip"],
            attributes={"city": "Hangzhou"},
            consent={"marketing": True},
        )
        await join(client, community["id"], alice["id"])
        for _ in range(3):
            await record(
                client,
                member_id=alice["id"],
                community_id=community["id"],
                occurred_at="2026-03-02T02:00:00Z",
                properties={"said": "my address is 1 Secret Road"},
            )
    async with await api(member(alice["id"])) as client:
        erased = await client.delete(f"/v1/members/{alice['id']}")
        again = await client.delete(f"/v1/members/{alice['id']}")
    assert erased.status_code == 204
    assert again.status_code == 404
    async with await api(OPERATOR) as client:
        assert (await client.get(f"/v1/members/{alice['id']}")).status_code == 404
        assert (await client.get("/v1/members", params={"q": "alice.secret@example.com"})).json()["items"] == []
        assert (await client.get("/v1/members", params={"community_id": community["id"]})).json()["items"] == []
        engagement = await client.get(
            "/v1/analytics/engagement",
            params={"community_id": community["id"], "from": "2026-03-02", "to": "2026-03-02"},
        )
    assert engagement.json()["days"][0]["dau"] == 1  # analytics survive

    members, tags = table_of(Member), table_of(MemberTag)
    activities, daily = table_of(Activity), table_of(ActivityDaily)
    mid = uuid.UUID(alice["id"])
    async with system.state("members").db.session() as session:
        row = (await session.execute(sa.select(members).where(members.c.id == mid))).one()
        left_tags = (await session.execute(sa.select(tags).where(tags.c.member_id == mid))).all()
        kept = (await session.execute(sa.select(activities).where(activities.c.member_id == mid))).all()
        rolled = (await session.execute(sa.select(daily.c.events).where(daily.c.member_id == mid))).scalar_one()
        outbox = (await session.execute(sa.select(kit_tables.outbox.c.data))).scalars().all()
    assert row.erased_at is not None
    assert row.external_id is None
    assert row.display_name == "Erased member"
    assert (row.email_cipher, row.email_index, row.phone_cipher, row.phone_index) == (None, None, None, None)
    assert row.tags == []
    assert row.attributes == {}
    assert row.consent_marketing is False
    assert left_tags == []
    assert len(kept) == 3
    assert all(a.properties is None for a in kept)
    assert rolled == 3
    everything = " ".join(str(data) for data in outbox) + " ".join(str(v) for v in row)
    for secret in ("Alice Secret", "alice.secret", "8613811112222", "Hangzhou", "Secret Road", "alice-ext"):
        assert secret not in everything
    (event,) = await outbox_events(system, "member.erased")
    assert event["member_id"] == alice["id"]
    assert event["erased_at"].endswith("Z")
    async with await api(OPERATOR) as client:
        reused = await client.post("/v1/members", json={"external_id": "alice-ext", "display_name": "New Alice"})
    assert reused.status_code == 201  # the external id is free again


async def test_who_may_erase(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        alice = await create_member(client)
        bob = await create_member(client)
        assert (await client.delete(f"/v1/members/{alice['id']}")).status_code == 403
    async with await api(partner("members:write")) as client:
        assert (await client.delete(f"/v1/members/{alice['id']}")).status_code == 403
    async with await api(member(bob["id"])) as client:
        assert (await client.delete(f"/v1/members/{alice['id']}")).status_code == 404
    async with await api(ADMIN) as client:
        assert (await client.delete(f"/v1/members/{alice['id']}")).status_code == 204
        assert (await client.delete(f"/v1/members/{uuid.uuid4()}")).status_code == 404


async def test_export_holds_everything_about_the_member(api: ApiFactory, internal_api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        alice = await create_member(
            client, email="alice@example.com", phone="+8613800000000", consent={"marketing": True}
        )
        bob = await create_member(client)
        await join(client, community["id"], alice["id"])
        await record(client, member_id=alice["id"], community_id=community["id"], properties={"n": 1})
        await record(client, member_id=bob["id"], community_id=community["id"])
    async with await internal_api(member(alice["id"])) as client:
        export = await client.get(f"/internal/members/{alice['id']}/export")
        other = await client.get(f"/internal/members/{bob['id']}/export")
    async with await internal_api(OPERATOR) as client:
        operator = await client.get(f"/internal/members/{alice['id']}/export")
    assert export.status_code == 200, export.text
    body = export.json()
    assert body["service"] == "members"
    assert body["profile"]["email"] == "alice@example.com"
    assert body["profile"]["phone"] == "+8613800000000"
    assert body["profile"]["consent"]["marketing"] is True
    assert [m["community_id"] for m in body["memberships"]] == [community["id"]]
    assert [(a["type"], a["properties"]) for a in body["activity"]] == [("check_in", {"n": 1})]
    assert other.status_code == 404
    assert operator.status_code == 403


async def test_resolve(api: ApiFactory, internal_api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        alice = await create_member(client, external_id="res-a")
        bob = await create_member(client)
    async with await internal_api(partner("members:token")) as client:
        by_id = await client.get("/internal/members/resolve", params={"member_id": alice["id"]})
        by_external = await client.get("/internal/members/resolve", params={"external_id": "res-a"})
        unknown = await client.get("/internal/members/resolve", params={"external_id": "nobody"})
        neither = await client.get("/internal/members/resolve")
        both = await client.get("/internal/members/resolve", params={"external_id": "res-a", "member_id": alice["id"]})
    async with await internal_api(member(bob["id"])) as client:
        other = await client.get("/internal/members/resolve", params={"member_id": alice["id"]})
        itself = await client.get("/internal/members/resolve", params={"member_id": bob["id"]})
    async with await internal_api(staff("reviewer")) as client:
        reviewer = await client.get("/internal/members/resolve", params={"member_id": alice["id"]})
    async with await api(ADMIN) as client:
        await client.delete(f"/v1/members/{alice['id']}")
    async with await internal_api(ADMIN) as client:
        erased = await client.get("/internal/members/resolve", params={"member_id": alice["id"]})
    assert by_id.json() == {"id": alice["id"], "external_id": "res-a"}
    assert by_external.json() == by_id.json()
    assert unknown.status_code == 404
    assert neither.status_code == 422
    assert both.status_code == 422
    assert other.status_code == 404
    assert itself.status_code == 200
    assert reviewer.status_code == 403
    assert erased.status_code == 404


async def test_internal_endpoints_need_the_internal_token_and_stay_out_of_openapi(system: System) -> None:
    async with system.direct("members") as client:
        assert (await client.get("/internal/members/resolve", params={"external_id": "x"})).status_code == 401
    async with system.direct("members", ADMIN) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/internal") for path in paths)
    assert "/v1/members/{member_id}" in paths
    assert "/v1/events/batch" in paths
