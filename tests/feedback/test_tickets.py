"""Tickets through the gateway: filing, visibility, the status machine, comments, internal notes."""

from __future__ import annotations

import asyncio
import uuid

from tests.feedback.conftest import AGENT, Api, file_ticket, outbox
from tests.system import System, member, partner, staff


async def test_member_files_and_sees_only_their_own(system: System, api: Api) -> None:
    lin, other = uuid.uuid4(), uuid.uuid4()
    ticket = await file_ticket(api, lin, priority="high", tags=["Shipping", "shipping"])
    assert ticket["status"] == "new"
    assert ticket["member_id"] == str(lin)
    assert ticket["tags"] == ["shipping"]
    assert set(ticket["sla"]) == {"first_response_due_at", "resolution_due_at", "breached"}
    assert ticket["sla"]["breached"] is False
    await file_ticket(api, other)
    async with api(member(lin)) as client:
        mine = (await client.get("/v1/tickets")).json()
    assert [t["id"] for t in mine["items"]] == [ticket["id"]]
    async with api(member(other)) as client:
        assert (await client.get(f"/v1/tickets/{ticket['id']}")).status_code == 404
        assert (await client.get(f"/v1/tickets/{ticket['id']}/comments")).status_code == 404
        assert (await client.post(f"/v1/tickets/{ticket['id']}/comments", json={"body": "hi"})).status_code == 404
        listed = (await client.get("/v1/tickets", params={"member_id": str(lin)})).json()
        assert listed["items"] == []
        assert (await client.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "low"})).status_code == 404
    async with api(member(lin)) as client:
        assert (await client.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "low"})).status_code == 403
    async with api(AGENT) as client:
        everyone = (await client.get("/v1/tickets")).json()
        assert len(everyone["items"]) == 2
        assert (await client.get(f"/v1/tickets/{ticket['id']}")).status_code == 200
    async with api(staff("reviewer")) as client:
        assert (await client.get("/v1/tickets")).status_code == 403
    [created] = [e for e in await outbox(system, "feedback.ticket_created") if e["ticket_id"] == ticket["id"]]
    assert created["priority"] == "high"


async def test_agent_files_on_behalf_of_a_member(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    async with api(AGENT) as client:
        missing = await client.post("/v1/tickets", json={"subject": "s", "body": "b"})
        assert missing.status_code == 422
        made = await client.post(
            "/v1/tickets",
            json={"subject": "Appeal", "body": "Muted by mistake", "category": "appeal", "member_id": str(lin)},
        )
    assert made.status_code == 201, made.text
    assert made.json()["member_id"] == str(lin)
    async with api(partner("tickets:write")) as client:
        by_partner = await client.post("/v1/tickets", json={"subject": "s", "body": "b", "member_id": str(lin)})
    assert by_partner.status_code == 201
    async with api(member(lin)) as client:
        assert len((await client.get("/v1/tickets")).json()["items"]) == 2


async def test_status_machine_reopen_window_and_closed_is_final(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    ticket = await file_ticket(api, lin)
    tid = ticket["id"]
    async with api(AGENT) as client:
        bad = await client.post(f"/v1/tickets/{tid}/close")
        assert bad.status_code == 409
        assert bad.json()["type"] == "https://qunyun.dev/problems/invalid-transition"
        assert (await client.patch(f"/v1/tickets/{tid}", json={"status": "pending"})).json()["status"] == "pending"
        resolved = (await client.post(f"/v1/tickets/{tid}/resolve")).json()
        assert resolved["status"] == "resolved"
        assert resolved["resolved_at"]
    async with api(member(lin)) as client:
        reopened = await client.post(f"/v1/tickets/{tid}/reopen")
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["status"] == "open"
        assert (await client.post(f"/v1/tickets/{tid}/reopen")).status_code == 409
    # A zero-day window: the owner can no longer reopen, an agent still can.
    async with api(staff("operator")) as client:
        settings = await client.put("/v1/support-settings", json={"reopen_window_days": 0})
        assert settings.status_code == 200, settings.text
    async with api(AGENT) as client:
        await client.post(f"/v1/tickets/{tid}/resolve")
    async with api(member(lin)) as client:
        late = await client.post(f"/v1/tickets/{tid}/reopen")
        assert late.status_code == 409
        assert late.json()["type"] == "https://qunyun.dev/problems/reopen-window-passed"
    async with api(AGENT) as client:
        assert (await client.post(f"/v1/tickets/{tid}/close")).json()["status"] == "closed"
        for attempt in (
            client.post(f"/v1/tickets/{tid}/reopen"),
            client.patch(f"/v1/tickets/{tid}", json={"status": "open"}),
            client.post(f"/v1/tickets/{tid}/comments", json={"body": "more"}),
        ):
            assert (await attempt).status_code == 409
    changes = [(e["previous_status"], e["status"]) for e in await outbox(system, "feedback.ticket_status_changed")]
    assert changes == [
        ("new", "pending"),
        ("pending", "resolved"),
        ("resolved", "open"),
        ("open", "resolved"),
        ("resolved", "closed"),
    ]


async def test_internal_notes_are_hidden_from_members_everywhere(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    ticket = await file_ticket(api, lin)
    tid = ticket["id"]
    async with api(AGENT) as client:
        note = await client.post(f"/v1/tickets/{tid}/comments", json={"body": "VIP, be gentle", "internal": True})
        assert note.status_code == 201
        assert (await client.get(f"/v1/tickets/{tid}")).json()["first_response_at"] is None  # a note is no response
        reply = await client.post(f"/v1/tickets/{tid}/comments", json={"body": "Sorry, resending today."})
        assert reply.status_code == 201
    async with api(member(lin)) as client:
        assert (
            await client.post(f"/v1/tickets/{tid}/comments", json={"body": "x", "internal": True})
        ).status_code == 422
        await client.post(f"/v1/tickets/{tid}/comments", json={"body": "Thanks!"})
        thread = (await client.get(f"/v1/tickets/{tid}/comments")).json()["items"]
        seen = (await client.get(f"/v1/tickets/{tid}")).text + (await client.get("/v1/tickets")).text
    assert [c["body"] for c in thread] == ["Sorry, resending today.", "Thanks!"]  # oldest first, no note
    assert "VIP" not in seen
    async with system.direct("feedback", member(lin)) as client:
        exported = await client.get(f"/internal/members/{lin}/export")
    assert exported.status_code == 200
    assert "VIP" not in exported.text
    assert "Thanks!" in exported.text
    async with api(AGENT) as client:
        full = (await client.get(f"/v1/tickets/{tid}/comments")).json()["items"]
        opened = (await client.get(f"/v1/tickets/{tid}")).json()
    assert [c["internal"] for c in full] == [True, False, False]
    assert opened["first_response_at"] == full[1]["created_at"]
    assert opened["status"] == "open"  # the agent's reply opened it
    commented = await outbox(system, "feedback.ticket_commented")
    assert [e["author_kind"] for e in commented] == ["agent", "member"]  # the note is never announced
    assert all(e["comment_id"] != full[0]["id"] for e in commented)


async def test_list_filters_and_keyset_pages(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    ids = [(await file_ticket(api, lin, priority="urgent" if i % 2 else "low"))["id"] for i in range(5)]
    async with api(AGENT) as client:
        urgent = (await client.get("/v1/tickets", params={"priority": "urgent"})).json()["items"]
        assert {t["id"] for t in urgent} == {ids[1], ids[3]}
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/tickets", params=params)).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids))
        await client.patch(f"/v1/tickets/{ids[0]}", json={"assignee_id": AGENT.id, "tags": ["refund"]})
        mine = (await client.get("/v1/tickets", params={"assignee_id": AGENT.id})).json()["items"]
        assert [t["id"] for t in mine] == [ids[0]]
        assert [t["id"] for t in (await client.get("/v1/tickets", params={"tag": "refund"})).json()["items"]] == [
            ids[0]
        ]
        assert (await client.get("/v1/tickets", params={"breached": "true"})).json()["items"] == []
        assert (await client.get("/v1/tickets", params={"cursor": "garbage"})).status_code == 422


async def test_round_robin_assignment_skips_disabled_agents(system: System, api: Api) -> None:
    a, b, c = (staff("agent", id=str(uuid.uuid4())) for _ in range(3))
    for agent in (a, b, c):
        async with api(agent) as client:
            assert (await client.get("/v1/tickets")).status_code == 200  # seen: joins the rotation
    async with api(staff("admin")) as client:
        assert (await client.patch(f"/v1/support-agents/{c.id}", json={"disabled": True})).status_code == 200
    async with api(staff("operator")) as client:
        await client.put("/v1/support-settings", json={"assignment": "round_robin"})
    lin = uuid.uuid4()
    assignees = [(await file_ticket(api, lin))["assignee_id"] for _ in range(4)]
    assert assignees == [a.id, b.id, a.id, b.id]


async def test_concurrent_filings_each_get_an_enabled_agent(system: System, api: Api) -> None:
    agents = [staff("agent", id=str(uuid.uuid4())) for _ in range(4)]
    for agent in agents:
        async with api(agent) as client:
            assert (await client.get("/v1/tickets")).status_code == 200
    async with api(staff("admin")) as client:
        assert (await client.patch(f"/v1/support-agents/{agents[3].id}", json={"disabled": True})).status_code == 200
    async with api(staff("operator")) as client:
        await client.put("/v1/support-settings", json={"assignment": "round_robin"})
    # As many filings at once as enabled agents: SKIP LOCKED moves each past the agents the
    # others hold, so none waits and none is left unassigned.
    filed = await asyncio.gather(*(file_ticket(api, uuid.uuid4()) for _ in range(3)))
    enabled = {a.id for a in agents[:3]}
    assert all(t["assignee_id"] in enabled for t in filed)
    created = await outbox(system, "feedback.ticket_created")
    assert {e["ticket_id"]: e["assignee_id"] for e in created} == {t["id"]: t["assignee_id"] for t in filed}


async def test_the_readme_tour_step_file_answer_rate(system: System, api: Api) -> None:
    """The README's step 9, call for call: the admin acts as an agent."""
    lin, community, admin = uuid.uuid4(), uuid.uuid4(), staff("admin")
    body = {"subject": "Order missing", "body": "My tea never arrived.", "category": "complaint", "priority": "high"}
    async with api(member(lin)) as client:
        tid = (await client.post("/v1/tickets", json=body | {"community_id": str(community)})).json()["id"]
    async with api(admin) as client:
        note = {"body": "Long-time member: check the courier first.", "internal": True}
        assert (await client.post(f"/v1/tickets/{tid}/comments", json=note)).status_code == 201
        reply = {"body": "Sorry! A new parcel leaves today."}
        assert (await client.post(f"/v1/tickets/{tid}/comments", json=reply)).status_code == 201
        assert (await client.post(f"/v1/tickets/{tid}/resolve")).json()["first_response_at"]
    async with api(member(lin)) as client:
        thread = (await client.get(f"/v1/tickets/{tid}/comments")).json()["items"]
        assert [c["body"] for c in thread] == ["Sorry! A new parcel leaves today."]
        rated = await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 5, "comment": "Fast and friendly"})
        assert rated.status_code == 201
