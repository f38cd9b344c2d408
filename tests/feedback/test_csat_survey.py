"""The CSAT survey asks content for a `survey` contact permit first: no permit, no survey.

The survey a resolution owes is written with it and asked by a job: a quiet-hours refusal is
asked again at content's `retry_at`, an outage or a dead worker only delays it, and any
number of replicas ask content once and announce the survey once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from services.common.db import Database, utcnow
from services.feedback.tickets.models import csat_surveys
from services.feedback.tickets.surveys import QUEUE, Surveys
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


async def contact_policy(system: System, community_id: str, quiet_hours: dict[str, str] | None) -> None:
    body = {"weekly_max": 3, "weekly_max_promotions": 1, "quiet_hours": quiet_hours}
    async with await system.client(OPERATOR) as op:
        response = await op.put(f"/v1/communities/{community_id}/contact-policy", json=body)
    assert response.status_code == 200, response.text


def surveys(system: System, outcome: str) -> float:
    value = system.state("feedback").surveys.outcomes.labels(outcome=outcome)._value.get()
    return float(value)


def job(system: System) -> Surveys:
    worker: Surveys = system.state("feedback").surveys
    return worker


async def survey_row(system: System, ticket_id: str) -> Any:
    async with system.state("feedback").db.engine.connect() as conn:
        rows = await conn.execute(sa.select(csat_surveys).where(csat_surveys.c.ticket_id == uuid.UUID(ticket_id)))
        return rows.one()


@contextmanager
def content_down(system: System) -> Iterator[None]:
    """Content unreachable (connection refused) while inside."""
    content = system.transport.apps.pop("content")
    try:
        yield
    finally:
        system.transport.apps["content"] = content


class CountingTransport(httpx.AsyncBaseTransport):
    """The system's transport, counting the permit requests that pass through it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.permits = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/contact-permits":
            self.permits += 1
        return await self.inner.handle_async_request(request)


@asynccontextmanager
async def replica(system: System, transport: CountingTransport, now: datetime) -> AsyncIterator[Surveys]:
    """The survey job of another feedback process (its own pool and HTTP client, small batches),
    whose clock reads `now`."""
    state = system.state("feedback")
    db = Database(state.db.url, system.settings, info={"outbox": state.outbox})
    async with httpx.AsyncClient(transport=transport) as http:
        try:
            yield Surveys(db, http, system.settings, batch=3, clock=lambda: now)
        finally:
            await db.dispose()


async def test_a_granted_permit_sends_the_survey_and_counts_in_the_budget(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id)
    ticket = await resolved(api, member_id, community_id)
    [requested] = await outbox(system, "feedback.csat_requested")
    assert (requested["ticket_id"], requested["member_id"]) == (ticket["id"], member_id)
    assert (await budget(system, member_id, community_id))["week_used"] == 1
    row = await survey_row(system, ticket["id"])
    assert (row.status, row.outcome, row.attempts) == ("done", "requested", 1)
    assert row.permit_id is not None
    async with api(AGENT) as client:  # reopened and resolved again: still one survey, one touch
        assert (await client.post(f"/v1/tickets/{ticket['id']}/reopen")).status_code == 200
        assert (await client.patch(f"/v1/tickets/{ticket['id']}", json={"status": "resolved"})).status_code == 200
    assert await job(system).run_due(utcnow() + timedelta(days=1)) == 0
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1


async def test_an_exhausted_budget_means_no_survey(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system, weekly_max=1)
    member_id = await create_member(system, community_id)
    await resolved(api, member_id, community_id)
    before = surveys(system, "contact-budget-exhausted")
    second = await resolved(api, member_id, community_id)
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert surveys(system, "contact-budget-exhausted") == before + 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1
    row = await survey_row(system, second["id"])  # final, with its reason: never asked again
    assert (row.status, row.outcome) == ("done", "contact-budget-exhausted")
    assert await job(system).run_due(utcnow() + timedelta(days=1)) == 0


async def test_a_survey_is_not_a_promotion_so_it_needs_no_marketing_consent(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id, marketing=False)
    await system.drain()  # content learns the missing consent from members' events
    await resolved(api, member_id, community_id)
    assert len(await outbox(system, "feedback.csat_requested")) == 1


async def test_no_community_or_an_unknown_one_means_no_survey(system: System, api: Api) -> None:
    member_id = await create_member(system)
    lone = await resolved(api, member_id, None)  # budgets are per community
    unknown = await resolved(api, member_id, str(uuid.uuid4()))  # content cannot place it (404): not a permit
    assert await outbox(system, "feedback.csat_requested") == []
    assert (await survey_row(system, lone["id"])).outcome == "no-community"
    row = await survey_row(system, unknown["id"])
    assert (row.status, row.outcome) == ("done", "content-rejected")
    assert surveys(system, "no-community") >= 1
    assert surveys(system, "content-rejected") >= 1
    assert await job(system).run_due(utcnow() + timedelta(days=1)) == 0


async def test_a_quiet_hours_refusal_is_asked_again_at_retry_at(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)  # in Asia/Shanghai
    member_id = await create_member(system, community_id)
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    quiet = {"start": f"{local - timedelta(hours=1):%H:%M}", "end": f"{local + timedelta(hours=1):%H:%M}"}
    await contact_policy(system, community_id, quiet)
    before = surveys(system, "quiet-hours")
    ticket = await resolved(api, member_id, community_id)
    assert await outbox(system, "feedback.csat_requested") == []
    assert surveys(system, "quiet-hours") == before + 1
    row = await survey_row(system, ticket["id"])
    assert (row.status, row.outcome) == ("pending", "quiet-hours")
    retry_at = row.next_attempt_at  # content's `retry_at`: the end of the quiet hours, local
    wait = retry_at - datetime.now(UTC)
    assert timedelta(minutes=58) < wait <= timedelta(hours=1), wait
    assert await job(system).run_due(retry_at - timedelta(seconds=1)) == 0  # not asked again before
    assert (await budget(system, member_id, community_id))["week_used"] == 0
    await contact_policy(system, community_id, None)  # for content too, the quiet hours are over
    assert await job(system).run_due(retry_at) == 1
    [requested] = await outbox(system, "feedback.csat_requested")
    assert requested["ticket_id"] == ticket["id"]
    assert (await budget(system, member_id, community_id))["week_used"] == 1
    assert (await survey_row(system, ticket["id"])).outcome == "requested"


async def test_content_down_at_the_resolution_delays_the_survey_then_sends_exactly_one(
    system: System, api: Api
) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id)
    with content_down(system):
        ticket = await resolved(api, member_id, community_id)
        row = await survey_row(system, ticket["id"])
        assert (row.status, row.outcome, row.attempts) == ("pending", "content-unavailable", 1)
        assert row.next_attempt_at > datetime.now(UTC)  # backing off
        assert await job(system).run_due(row.next_attempt_at) == 1  # still down: backs off again
    assert await outbox(system, "feedback.csat_requested") == []
    row = await survey_row(system, ticket["id"])
    assert (row.status, row.attempts) == ("pending", 2)
    assert await job(system).run_due() == 0  # content is back, but the retry is not due yet
    assert await job(system).run_due(row.next_attempt_at) == 1
    [requested] = await outbox(system, "feedback.csat_requested")
    assert requested["ticket_id"] == ticket["id"]
    assert await job(system).run_due(row.next_attempt_at + timedelta(days=1)) == 0
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1


async def test_a_worker_that_dies_holding_a_survey_only_delays_it(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id)
    with content_down(system):
        ticket = await resolved(api, member_id, community_id)
    due_at = (await survey_row(system, ticket["id"])).next_attempt_at
    async with system.state("feedback").db.session() as session:  # claimed, then the process died
        candidates = sa.select(csat_surveys.c.ticket_id)
        claim = await QUEUE.claim(session, candidates, now=due_at, lease_seconds=60)
        await session.commit()
    assert len(claim.keys) == 1
    assert await job(system).run_due(due_at + timedelta(seconds=59)) == 0  # its lease still holds
    assert await job(system).run_due(claim.lease_until) == 1
    assert len(await outbox(system, "feedback.csat_requested")) == 1
    assert (await budget(system, member_id, community_id))["week_used"] == 1


async def test_two_replicas_ask_content_once_and_announce_once(system: System, api: Api) -> None:
    community_id = await quiet_free_community(system)
    members = [await create_member(system, community_id) for _ in range(9)]
    with content_down(system):  # so every survey is still owed when the replicas start
        tickets = [await resolved(api, member_id, community_id) for member_id in members]
    later = utcnow() + timedelta(hours=1)
    a, b = CountingTransport(system.transport), CountingTransport(system.transport)
    async with replica(system, a, later) as one, replica(system, b, later) as two:
        first = uuid.UUID(tickets[0]["id"])  # both asked for the same survey at once: one claim wins
        assert sorted(map(str, await asyncio.gather(one.request_now(first), two.request_now(first)))) == [
            "None",
            "requested",
        ]
        claimed = 1
        while counts := await asyncio.gather(one.run_due(), two.run_due()):
            if sum(counts) == 0:
                break
            claimed += sum(counts)
    assert claimed == len(tickets)
    assert a.permits + b.permits == len(tickets)
    requested = await outbox(system, "feedback.csat_requested")
    assert sorted(r["ticket_id"] for r in requested) == sorted(t["id"] for t in tickets)
    for member_id in members:
        assert (await budget(system, member_id, community_id))["week_used"] == 1
