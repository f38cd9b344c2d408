"""The suggestion board: votes weighed by level, operator answers, and the author's reward."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.common.identity import SYSTEM
from tests.feedback.conftest import Api, outbox
from tests.feedback.moderation_factories import community
from tests.system import System, member, staff


def level_changed(member_id: uuid.UUID, level: str, rank: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": str(uuid.uuid4()),
        "type": "rewards.level_changed",
        "source": "rewards",
        "occurred_at": now,
        "data": {
            "member_id": str(member_id),
            "level": level,
            "previous_level": None,
            "lifetime": 600,
            "rank": rank,
            "changed_at": now,
        },
    }


async def test_votes_count_members_and_score_weighs_levels(system: System, api: Api) -> None:
    board = await community(system, members=3, rules=False)
    community_id = board.id
    author, core, newcomer = (uuid.UUID(m) for m in board.members)
    async with system.direct("feedback", SYSTEM) as client:
        delivered = await client.post("/internal/events", json={"events": [level_changed(core, "Active", 2)]})
    assert delivered.status_code == 200, delivered.text
    async with api(member(author)) as client:
        made = await client.post("/v1/suggestions", json={"community_id": community_id, "title": "Quiz night"})
        assert made.status_code == 201, made.text
        other = await client.post("/v1/suggestions", json={"community_id": community_id, "title": "Tea tasting"})
    suggestion = made.json()
    assert (suggestion["status"], suggestion["votes"], suggestion["score"]) == ("open", 0, 0)
    sid = suggestion["id"]
    async with api(member(core)) as client:
        voted = (await client.post(f"/v1/suggestions/{sid}/votes")).json()
        assert (voted["votes"], voted["score"], voted["voted"]) == (1, 3, True)
        again = (await client.post(f"/v1/suggestions/{sid}/votes")).json()
        assert (again["votes"], again["score"]) == (1, 3)  # a repeat changes nothing
    async with api(member(newcomer)) as client:
        both = (await client.post(f"/v1/suggestions/{sid}/votes")).json()
        assert (both["votes"], both["score"]) == (2, 4)
        await client.post(f"/v1/suggestions/{other.json()['id']}/votes")
        top = (await client.get("/v1/suggestions", params={"community_id": community_id, "sort": "top"})).json()
        assert [s["title"] for s in top["items"]] == ["Quiz night", "Tea tasting"]
        new = (await client.get("/v1/suggestions", params={"community_id": community_id, "sort": "new"})).json()
        assert [s["title"] for s in new["items"]] == ["Tea tasting", "Quiz night"]
        undone = (await client.delete(f"/v1/suggestions/{sid}/votes")).json()
        assert (undone["votes"], undone["score"], undone["voted"]) == (1, 3, False)
    # A promotion re-weighs the votes already cast.
    async with system.direct("feedback", SYSTEM) as client:
        await client.post("/internal/events", json={"events": [level_changed(core, "Core", 3)]})
    async with api(staff("operator")) as client:
        assert (await client.get(f"/v1/suggestions/{sid}")).json()["score"] == 4
    async with api(staff("operator")) as client:
        assert (await client.post(f"/v1/suggestions/{sid}/votes")).status_code == 403
    async with api(member(author)) as client:
        assert (await client.patch(f"/v1/suggestions/{sid}", json={"status": "done"})).status_code == 403


async def test_done_suggestion_pays_its_author_through_rewards(system: System, api: Api) -> None:
    board = await community(system, members=2, rules=False)
    community_id = board.id
    author, voter = (uuid.UUID(m) for m in board.members)
    async with api(member(author)) as client:
        sid = (await client.post("/v1/suggestions", json={"community_id": community_id, "title": "Quiz"})).json()["id"]
    async with api(member(voter)) as client:
        await client.post(f"/v1/suggestions/{sid}/votes")
    async with api(staff("operator")) as client:
        planned = await client.patch(f"/v1/suggestions/{sid}", json={"status": "planned", "response": "Next month!"})
        assert planned.status_code == 200, planned.text
        assert planned.json()["response"] == "Next month!"
        done = (await client.patch(f"/v1/suggestions/{sid}", json={"status": "done"})).json()
        assert done["status"] == "done"
        assert done["completed_at"]
    [completed] = await outbox(system, "feedback.suggestion_completed")
    assert completed["voter_ids"] == [str(voter)]
    changes = [(e["previous_status"], e["status"]) for e in await outbox(system, "feedback.suggestion_status_changed")]
    assert changes == [("open", "planned"), ("planned", "done")]
    await system.drain()
    async with api(member(author)) as client:
        ledger = (await client.get(f"/v1/members/{author}/points/ledger")).json()["items"]
        points = (await client.get(f"/v1/members/{author}/points")).json()
    assert [(e["delta"], e["reason"]) for e in ledger] == [(50, "earned:suggestion_completed")]
    assert points["balance"] == 50
    # Redelivery pays nothing more.
    await system.drain()
    async with api(member(author)) as client:
        assert (await client.get(f"/v1/members/{author}/points")).json()["balance"] == 50


async def test_a_board_belongs_to_its_community(system: System, api: Api) -> None:
    """Members post, read and vote only in communities they are in; staff see every board."""
    board = await community(system, members=1, rules=False)
    elsewhere = await community(system, members=1, rules=False)
    insider, outsider = uuid.UUID(board.members[0]), uuid.UUID(elsewhere.members[0])
    async with api(member(insider)) as client:
        made = await client.post("/v1/suggestions", json={"community_id": board.id, "title": "Quiz night"})
        assert made.status_code == 201, made.text
    sid = made.json()["id"]
    async with api(member(outsider)) as client:
        refused = await client.post("/v1/suggestions", json={"community_id": board.id, "title": "Spam"})
        assert (refused.status_code, refused.json()["type"]) == (
            403,
            "https://qunyun.dev/problems/not-a-community-member",
        )
        assert (await client.get(f"/v1/suggestions/{sid}")).status_code == 404
        assert (await client.post(f"/v1/suggestions/{sid}/votes")).status_code == 404
        assert (await client.get("/v1/suggestions", params={"community_id": board.id})).status_code == 403
        assert (await client.get("/v1/suggestions")).json()["items"] == []  # only their own communities
    async with api(staff("operator")) as client:
        seen = (await client.get(f"/v1/suggestions/{sid}")).json()
        assert (seen["votes"], seen["title"]) == (0, "Quiz night")  # the refused vote changed nothing
