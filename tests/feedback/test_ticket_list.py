"""The ticket list's statement shapes (one prepared statement per combination of filters):
each filter alone and combined, several statuses, a cursor under filters, a member's scope,
and a listed ticket that reads exactly as it does by id (rating included)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.feedback.conftest import AGENT, Api, file_ticket
from tests.system import System, member


async def _ids(api: Api, caller: Any, **params: Any) -> list[str]:
    """Every page of the list (2 per page), newest first."""
    seen: list[str] = []
    cursor = None
    async with api(caller) as client:
        while True:
            query = params | {"limit": 2} | ({"cursor": cursor} if cursor else {})
            response = await client.get("/v1/tickets", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return seen


async def test_every_filter_shape_and_cursor(system: System, api: Api) -> None:
    lin, mei = uuid.uuid4(), uuid.uuid4()
    north, south = uuid.uuid4(), uuid.uuid4()
    specs = [
        (lin, north, "complaint", "high", ["Refund"]),
        (lin, south, "question", "low", []),
        (mei, north, "complaint", "low", ["refund", "late"]),
        (mei, north, "bug", "high", []),
        (lin, north, "complaint", "high", ["late"]),
    ]
    ids = [
        (await file_ticket(api, owner, community_id=str(community), category=category, priority=priority, tags=tags))[
            "id"
        ]
        for owner, community, category, priority, tags in specs
    ]
    newest = list(reversed(ids))
    async with api(AGENT) as client:
        for tid in (ids[0], ids[2]):
            assert (await client.patch(f"/v1/tickets/{tid}", json={"status": "open"})).status_code == 200
        assert (await client.patch(f"/v1/tickets/{ids[3]}", json={"status": "pending"})).status_code == 200
        await client.patch(f"/v1/tickets/{ids[4]}", json={"assignee_id": AGENT.id})

    def expect(keep: Any) -> list[str]:
        return [tid for tid, spec in zip(newest, reversed(specs), strict=True) if keep(tid, spec)]

    assert await _ids(api, AGENT) == newest
    assert await _ids(api, AGENT, status="open") == [ids[2], ids[0]]
    assert await _ids(api, AGENT, status=["open", "pending"]) == [ids[3], ids[2], ids[0]]
    assert await _ids(api, AGENT, status=["new"]) == [ids[4], ids[1]]
    assert await _ids(api, AGENT, community_id=str(north)) == expect(lambda _, s: s[1] == north)
    assert await _ids(api, AGENT, community_id=str(north), category="complaint", status="open") == [ids[2], ids[0]]
    assert await _ids(api, AGENT, member_id=str(mei)) == [ids[3], ids[2]]
    assert await _ids(api, AGENT, priority="high", community_id=str(north)) == [ids[4], ids[3], ids[0]]
    assert await _ids(api, AGENT, tag=" REFUND ") == [ids[2], ids[0]]
    assert await _ids(api, AGENT, tag="late", status="new") == [ids[4]]
    assert await _ids(api, AGENT, assignee_id=AGENT.id) == [ids[4]]
    assert await _ids(api, AGENT, breached="false", category="complaint") == [ids[4], ids[2], ids[0]]
    assert await _ids(api, AGENT, breached="true") == []
    # A member: their own tickets whatever the filters; anyone else's member_id lists nothing.
    assert await _ids(api, member(lin)) == [ids[4], ids[1], ids[0]]
    assert await _ids(api, member(lin), community_id=str(north), status="new") == [ids[4]]
    assert await _ids(api, member(lin), member_id=str(lin), priority="high") == [ids[4], ids[0]]
    assert await _ids(api, member(lin), member_id=str(mei)) == []
    assert await _ids(api, member(mei), tag="refund") == [ids[2]]


async def test_a_listed_ticket_reads_as_it_does_by_id(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    rated = (await file_ticket(api, lin, tags=["shipping"]))["id"]
    plain = (await file_ticket(api, lin))["id"]
    async with api(AGENT) as client:
        assert (await client.post(f"/v1/tickets/{rated}/resolve")).status_code == 200
    async with api(member(lin)) as client:
        rating = await client.post(f"/v1/tickets/{rated}/satisfaction", json={"rating": 4, "comment": "Quick"})
        assert rating.status_code == 201
        listed = {t["id"]: t for t in (await client.get("/v1/tickets")).json()["items"]}
        for tid in (rated, plain):
            assert listed[tid] == (await client.get(f"/v1/tickets/{tid}")).json()
    assert listed[rated]["satisfaction"]["rating"] == 4
    assert listed[plain]["satisfaction"] is None
