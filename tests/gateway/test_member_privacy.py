"""Export and erasure across services, through the gateway: one export document (or ZIP) with
every service's part, whole or failed; after erasure, each service's confirmation on record
and nothing personal left to read anywhere."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx

from tests.gateway.compose_support import ADMIN, AGENT, OPERATOR, broken_service, seed
from tests.system import System, member

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


async def test_the_export_holds_every_services_data(system: System) -> None:
    seeded = await seed(system)
    async with await system.client(ADMIN) as admin:
        answer = await admin.get(f"/v1/members/{seeded.member_id}/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    export = answer.json()
    assert export["member_id"] == seeded.member_id
    parts = export["services"]
    assert set(parts) == {"members", "content", "rewards", "feedback"}
    assert parts["members"]["profile"]["email"] == "mei@example.com"
    assert len(parts["members"]["activity"]) == 3
    assert [c["community_id"] for c in parts["content"]["communities"]] == [seeded.community_id]
    assert [p["kind"] for p in parts["content"]["contact_permits"]] == ["survey"]
    assert parts["rewards"]["points"]["balance"] == 50 + 15 - 20
    assert [r["status"] for r in parts["rewards"]["redemptions"]] == ["pending"]
    assert [t["id"] for t in parts["feedback"]["tickets"]] == [seeded.ticket_id]

    # The member exports themself; nobody else but an admin may.
    async with await system.client(member(seeded.member_id)) as mei:
        own = await mei.get(f"/v1/members/{seeded.member_id}/export")
    assert own.status_code == 200, own.text
    assert own.json()["services"]["feedback"] == parts["feedback"]
    other = await seed(system)
    async with await system.client(member(other.member_id)) as stranger:
        problem(await stranger.get(f"/v1/members/{seeded.member_id}/export"), 404)
    async with await system.client(OPERATOR) as op:
        problem(await op.get(f"/v1/members/{seeded.member_id}/export"), 403)


async def test_the_export_as_a_zip_has_one_file_per_service(system: System) -> None:
    seeded = await seed(system)
    async with await system.client(ADMIN) as admin:
        document = (await admin.get(f"/v1/members/{seeded.member_id}/export")).json()
        answer = await admin.get(f"/v1/members/{seeded.member_id}/export", headers={"Accept": "application/zip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert f"member-{seeded.member_id}-export.zip" in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert sorted(archive.namelist()) == ["content.json", "feedback.json", "members.json", "rewards.json"]
        for service in ("content", "feedback", "rewards"):
            assert json.loads(archive.read(f"{service}.json")) == document["services"][service]
        members = json.loads(archive.read("members.json"))
    assert members["profile"] == document["services"]["members"]["profile"]


async def test_a_failed_part_fails_the_export(system: System) -> None:
    seeded = await seed(system)
    async with await system.client(ADMIN) as admin:
        with broken_service(system, "content"):
            down = await admin.get(f"/v1/members/{seeded.member_id}/export")
            zipped = await admin.get(f"/v1/members/{seeded.member_id}/export", headers={"Accept": "application/zip"})
        body = problem(down, 503)
        assert body["services"] == ["content"]
        assert down.headers["retry-after"]
        problem(zipped, 503)

        original = system.transport.apps["rewards"]

        class Broken(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                return httpx.Response(500, json={"oops": True})

        system.transport.apps["rewards"] = Broken()  # type: ignore[assignment]
        try:
            broken = await admin.get(f"/v1/members/{seeded.member_id}/export")
        finally:
            system.transport.apps["rewards"] = original
        assert problem(broken, 502)["services"] == ["rewards"]


async def test_erasure_is_confirmed_service_by_service(system: System) -> None:
    seeded = await seed(system)
    path = f"/v1/members/{seeded.member_id}/erasure"
    async with await system.client(ADMIN) as admin:
        problem(await admin.get(path), 404)  # nothing asked yet
        assert (await admin.delete(f"/v1/members/{seeded.member_id}")).status_code == 204
        # Members' events reach the gateway (the request) and the services, whose own
        # confirmations are still in their outboxes.
        await system.state("members").relay.drain()
        pending = await admin.get(path)
        assert pending.status_code == 200, pending.text
        status = pending.json()
        assert status["complete"] is False
        assert status["completed_at"] is None
        assert [(s["service"], s["status"]) for s in status["services"]] == [
            ("members", "erased"),
            ("content", "pending"),
            ("rewards", "pending"),
            ("feedback", "pending"),
        ]
        assert status["services"][0]["erased_at"] == status["requested_at"]

        await system.drain()
        done = (await admin.get(path)).json()
    assert done["complete"] is True
    assert {s["status"] for s in done["services"]} == {"erased"}
    assert all(s["erased_at"] >= done["requested_at"] for s in done["services"])
    assert done["completed_at"] == max(s["erased_at"] for s in done["services"])
    for identity in (OPERATOR, AGENT, member(seeded.member_id)):
        async with await system.client(identity) as client:
            assert (await client.get(path)).status_code in (401, 403)


async def test_after_erasure_no_service_answers_anything_personal(system: System) -> None:
    seeded = await seed(system)
    mid = seeded.member_id
    async with await system.client(member(mid)) as mei:
        assert (await mei.delete(f"/v1/members/{mid}")).status_code == 204
        await system.drain()
        problem(await mei.get(f"/v1/members/{mid}/overview"), 401)  # the member's tokens are revoked

    async with await system.client(ADMIN) as admin:
        assert (await admin.get(f"/v1/members/{mid}/erasure")).json()["complete"] is True
        problem(await admin.get(f"/v1/members/{mid}/export"), 404)
        problem(await admin.get(f"/v1/members/{mid}/overview"), 404)
        problem(await admin.get(f"/v1/members/{mid}"), 404)
        problem(await admin.get(f"/v1/members/{mid}/points"), 404)
        problem(await admin.get(f"/v1/members/{mid}/points/ledger"), 404)
        problem(await admin.get(f"/v1/members/{mid}/badges"), 404)
        budget = (await admin.get(f"/v1/members/{mid}/contact-budget")).json()
        assert budget["week_used"] == 0
        listed = await admin.get("/v1/members", params={"q": "mei@example.com"})
        assert listed.json()["items"] == []
    async with await system.client(AGENT) as agent:
        assert (await agent.get("/v1/tickets", params={"member_id": mid})).json()["items"] == []
        ticket = (await agent.get(f"/v1/tickets/{seeded.ticket_id}")).json()
        assert ticket["member_id"] != mid  # a pseudonym now
    # Each service's own export has nothing left that names the member.
    for service in ("content", "feedback"):
        async with system.direct(service, ADMIN) as direct:
            left = (await direct.get(f"/internal/members/{mid}/export")).json()
        assert not any(v for k, v in left.items() if isinstance(v, list)), (service, left)
    async with system.direct("content", ADMIN) as direct:
        assert (await direct.get(f"/internal/members/{mid}/export")).json()["marketing_consent"] is None


async def test_the_readme_tour_step_composed_views(system: System) -> None:
    """The README's step 11, call for call (the admin is the staff caller)."""
    seeded = await seed(system)
    mid, community = seeded.member_id, seeded.community_id
    async with await system.client(ADMIN) as admin, await system.client(member(mid)) as mei:
        overview = (await admin.get(f"/v1/members/{mid}/overview", params={"community_id": community})).json()
        assert overview["points"]["balance"] == 45
        assert overview["degraded"] == []
        board = (await admin.get("/v1/dashboard", params={"community_id": community})).json()
        assert board["engagement"]["dau"] >= 0
        assert board["degraded"] == []
        assert sorted((await mei.get(f"/v1/members/{mid}/export")).json()["services"]) == [
            "content",
            "feedback",
            "members",
            "rewards",
        ]
        zipped = await admin.get(f"/v1/members/{mid}/export", headers={"Accept": "application/zip"})
        assert zipped.headers["content-type"] == "application/zip"
        assert (await admin.delete(f"/v1/members/{mid}")).status_code == 204
        await system.drain()
        erasure = (await admin.get(f"/v1/members/{mid}/erasure")).json()
    assert erasure["complete"] is True
    assert [s["service"] for s in erasure["services"]] == ["members", "content", "rewards", "feedback"]
