"""Erasure pseudonymizes the member everywhere in feedback; the text stays for the agents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.common.identity import SYSTEM
from tests.feedback.conftest import AGENT, Api, file_ticket
from tests.feedback.moderation_factories import community
from tests.system import System, member


async def test_erasure_pseudonymizes_tickets_comments_ratings_suggestions_votes(system: System, api: Api) -> None:
    board = await community(system, members=1, rules=False)
    lin = uuid.UUID(board.members[0])
    ticket = await file_ticket(api, lin, body="Call me at 555-0100")
    tid = ticket["id"]
    async with api(AGENT) as client:
        await client.post(f"/v1/tickets/{tid}/resolve")
    async with api(member(lin)) as client:
        await client.post(f"/v1/tickets/{tid}/comments", json={"body": "Thanks"})
        await client.post(f"/v1/tickets/{tid}/satisfaction", json={"rating": 5})
        sid = (await client.post("/v1/suggestions", json={"community_id": board.id, "title": "Quiz"})).json()["id"]
        await client.post(f"/v1/suggestions/{sid}/votes")
    async with system.direct("feedback", member(lin)) as client:
        before = (await client.get(f"/internal/members/{lin}/export")).json()
    assert [len(before[k]) for k in ("tickets", "comments", "suggestions", "votes")] == [1, 1, 1, 1]
    now = datetime.now(UTC).isoformat()
    event = {
        "id": str(uuid.uuid4()),
        "type": "member.erased",
        "source": "members",
        "occurred_at": now,
        "data": {"member_id": str(lin), "erased_at": now},
    }
    async with system.direct("feedback", SYSTEM) as client:
        result = (await client.post("/internal/events", json={"events": [event, event]})).json()
    assert result == {"applied": 1, "duplicates": 1}
    async with system.direct("feedback", SYSTEM) as client:
        after = (await client.get(f"/internal/members/{lin}/export")).json()
    assert [len(after[k]) for k in ("tickets", "comments", "suggestions", "votes")] == [0, 0, 0, 0]
    async with api(AGENT) as client:
        kept = (await client.get(f"/v1/tickets/{tid}")).json()
        thread = (await client.get(f"/v1/tickets/{tid}/comments")).json()["items"]
        suggestion = (await client.get(f"/v1/suggestions/{sid}")).json()
    assert kept["body"] == "Call me at 555-0100"
    assert kept["member_id"] != str(lin)
    assert kept["satisfaction"]["rating"] == 5
    assert thread[0]["author_id"] == kept["member_id"]  # one pseudonym for the same person
    assert suggestion["member_id"] == kept["member_id"]
    assert suggestion["votes"] == 1
