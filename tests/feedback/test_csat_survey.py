"""The CSAT survey asks content for a `survey` contact permit first: no permit, no survey."""

from __future__ import annotations

import uuid
from typing import Any

from tests.content.factories import OPERATOR, create_member, quiet_free_community
from tests.feedback.conftest import AGENT, Api, file_ticket, outbox
from tests.system import System


async def resolved(api: Api, member_id: str, community_id: str | None) -> dict[str, Any]:
    fields = {"community_id": community_id} if community_id else {}
    ticket = await file_ticket(api, uuid.UUID(member_id), **fields)
    async with api(AGENT) as client:
        response = await client.post(f"/v1/tickets/{ticket['id']}/resolve")
    assert response.status_code == 200, response.text
    return ticket


async def budget(system: System, member_id: str, community_id: str) -> dict[str, Any]:
    async with await system.client(OPERATOR) as op:
        response = await op.get(f"/v1/members/{member_id}/contact-budget", params={"community_id": community_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def surveys(system: System, outcome: str) -> float:
    value = system.state("feedback").surveys.outcomes.labels(outcome=outcome)._value.get()
    return float(value)


async def test_a_granted_permit_sends_the_survey_and_counts_in_the_budget(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id)
    ticket = await resolved(api, member_id, community_id)
    [requested] = await outbox(system, "feedback.csat_requested")
    assert (requested["ticket_id"], requested["member_id"]) == (ticket["id"], member_id)
    assert (await budget(system, member_id, community_id))["week_used"] == 1
    async with api(AGENT) as client:  # reopened and resolved again: still one survey, one touch
        assert (await client.post(f"/v1/tickets/{ticket['id']}/reopen")).status_code == 200
        assert (await client.patch(f"/v1/tickets/{ticket['id']}", json={"status": "resolved"})).status_code == 200
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1


async def test_an_exhausted_budget_means_no_survey(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system, weekly_max=1)
    member_id = await create_member(system, community_id)
    await resolved(api, member_id, community_id)
    before = surveys(system, "contact-budget-exhausted")
    await resolved(api, member_id, community_id)
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert surveys(system, "contact-budget-exhausted") == before + 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1


async def test_a_survey_is_not_a_promotion_so_it_needs_no_marketing_consent(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id, marketing=False)
    await system.drain()  # content learns the missing consent from members' events
    await resolved(api, member_id, community_id)
    assert len(await outbox(system, "feedback.csat_requested")) == 1


async def test_no_community_or_no_answer_means_no_survey(system: System, api: Api) -> None:
    member_id = await create_member(system)
    await resolved(api, member_id, None)  # budgets are per community
    await resolved(api, member_id, str(uuid.uuid4()))  # content cannot place it (404): not a permit
    assert await outbox(system, "feedback.csat_requested") == []
    assert surveys(system, "no-community") >= 1
    assert surveys(system, "content-unavailable") >= 1
