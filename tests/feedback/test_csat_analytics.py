"""CSAT after resolution, and support analytics against hand computations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.feedback.tickets.service import TICKETS
from tests.content.factories import quiet_free_community
from tests.feedback.conftest import AGENT, Api, file_ticket, outbox
from tests.system import System, member, staff


async def test_owner_rates_once_after_resolution(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    ticket = await file_ticket(api, lin)
    tid = ticket["id"]
    async with api(member(lin)) as client:
        early = await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 5})
        assert early.status_code == 409
        assert early.json()["type"] == "https://qunyun.dev/problems/ticket-not-resolved"
    async with api(AGENT) as client:
        await client.post(f"/v1/tickets/{tid}/resolve")
        assert (await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 5})).status_code == 403
    async with api(member(uuid.uuid4())) as client:
        assert (await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 5})).status_code == 404
    async with api(member(lin)) as client:
        assert (await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 6})).status_code == 422
        rated = await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 4, "comment": "Quick"})
        assert rated.status_code == 201, rated.text
        again = await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 1})
        assert again.status_code == 409
        assert again.json()["type"] == "https://qunyun.dev/problems/already-rated"
        shown = (await client.get(f"/v1/tickets/{tid}")).json()
    assert shown["satisfaction"]["rating"] == 4
    assert await outbox(system, "feedback.csat_requested") == []  # no community, no survey; rating still works
    [received] = await outbox(system, "feedback.csat_received")
    assert received["rating"] == 4


async def test_support_analytics_match_a_hand_computation(system: System, api: Api) -> None:
    community, lin = uuid.UUID(await quiet_free_community(system)), uuid.uuid4()
    t = [
        await file_ticket(api, lin, community_id=str(community), priority="high" if i == 0 else "normal")
        for i in range(5)
    ]
    await file_ticket(api, lin, community_id=str(uuid.uuid4()))  # another community: never counted
    async with api(AGENT) as client:
        for ticket in t[:3]:
            await client.post(f"/v1/tickets/{ticket['id']}/comments", json={"body": "Looking into it."})
        for ticket in t[:2]:
            await client.post(f"/v1/tickets/{ticket['id']}/resolve")
        await client.patch(f"/v1/tickets/{t[3]['id']}", json={"status": "pending"})
    async with api(member(lin)) as client:
        await client.post(f"/v1/tickets/{t[0]['id']}/satisfaction", json={"rating": 4})
    # Response and resolution times as if they had taken a while (stored when they happen).
    async with system.state("feedback").db.engine.begin() as conn:
        for ticket, first, resolution in ((t[0], 10, 100), (t[1], 20, 300), (t[2], 30, None)):
            await conn.execute(
                TICKETS.update()
                .where(TICKETS.c.id == uuid.UUID(ticket["id"]))
                .values(first_response_minutes=first, resolution_minutes=resolution)
            )
        await conn.execute(
            TICKETS.update()
            .where(TICKETS.c.id == uuid.UUID(t[3]["id"]))
            .values(breached=True, breached_assignee_id=uuid.UUID(AGENT.id))
        )
    now = datetime.now(UTC)
    params = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
        "community_id": str(community),
    }
    async with api(staff("analyst")) as client:
        response = await client.get("/v1/analytics/support", params=params)
    assert response.status_code == 200, response.text
    figures = response.json()
    assert figures["tickets"] == 5
    assert figures["sla_attainment"] == 0.8  # 4 of 5 never breached
    assert figures["median_first_response_minutes"] == 20.0  # 10, 20, 30
    assert figures["p90_first_response_minutes"] == 28.0  # 20 + 0.8 x (30 - 20)
    assert figures["median_resolution_minutes"] == 200.0  # 100, 300
    assert figures["csat_average"] == 4.0
    assert figures["csat_response_rate"] == 0.5  # 1 rating of 2 surveys
    assert figures["backlog_by_status"] == {"new": 1, "open": 1, "pending": 1}
    assert figures["backlog_by_priority"] == {"low": 0, "normal": 3, "high": 0, "urgent": 0}
    assert figures["breaches_by_agent"] == [{"assignee_id": AGENT.id, "breaches": 1}]
    async with api(staff("analyst")) as client:
        everything = (await client.get("/v1/analytics/support", params={k: params[k] for k in ("from", "to")})).json()
        empty = (
            await client.get(
                "/v1/analytics/support", params={"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}
            )
        ).json()
        backwards = await client.get("/v1/analytics/support", params={"from": params["to"], "to": params["from"]})
    assert everything["tickets"] == 6
    assert empty["tickets"] == 0
    assert empty["sla_attainment"] is None
    assert backwards.status_code == 422
    async with api(member(lin)) as client:
        assert (await client.get("/v1/analytics/support")).status_code == 403
    async with system.state("feedback").db.engine.connect() as conn:
        stored = await conn.scalar(sa.select(sa.func.count()).select_from(TICKETS))
    assert stored == 6
