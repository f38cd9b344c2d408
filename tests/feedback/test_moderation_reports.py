"""Reports: who files them, grouping per message, repeats, anonymity, the queue and resolution."""

from __future__ import annotations

import asyncio
import json
import uuid

from services.common.problems import problem_type
from tests.content.factories import OPERATOR
from tests.feedback.conftest import AGENT, outbox
from tests.feedback.moderation_factories import PROBLEM, community, feedback_sql, report, resolve, standing
from tests.system import System, member, partner, staff


async def test_reports_of_one_message_are_one_queue_item_and_a_repeat_changes_nothing(system: System) -> None:
    c = await community(system, members=4)
    spammer, first, second, third = c.members
    one = await report(system, c, first, spammer, message_id="wx-1")
    assert (one["status"], one["reporter_count"]) == ("open", None)  # a reporter does not see the count
    body = {
        "community_id": c.id,
        "reported_member_id": spammer,
        "evidence": {"message_id": "wx-1", "text": "again"},
    }
    async with await system.client(member(first)) as client:
        repeat = await client.post("/v1/reports", json=body)
    assert (repeat.status_code, repeat.json()["id"]) == (200, one["id"])  # nothing changed
    assert (await report(system, c, second, spammer, message_id="wx-1"))["id"] == one["id"]
    async with await system.client(partner("moderation:write")) as bot:  # the bot, for a member
        on_behalf = await bot.post("/v1/reports", json=body | {"reporter_member_id": third})
    assert on_behalf.status_code == 201, on_behalf.text
    other_message = await report(system, c, first, spammer, message_id="wx-2")
    async with await system.client(AGENT) as client:
        queue = (await client.get("/v1/reports", params={"community_id": c.id, "status": "open"})).json()["items"]
    assert [(r["id"], r["reporter_count"]) for r in queue] == [(one["id"], 3), (other_message["id"], 1)]
    assert {f["reporter_member_id"] for f in queue[0]["filings"]} == {first, second, third}
    assert len(await outbox(system, "moderation.report_created")) == 2  # one per queue item


async def test_concurrent_duplicate_reports_make_one_item_with_a_true_count(system: System) -> None:
    c = await community(system, members=9)
    spammer, *reporters = c.members
    body = {"community_id": c.id, "reported_member_id": spammer, "evidence": {"message_id": "dup-1"}}

    async def file(reporter: str) -> int:
        async with await system.client(member(reporter)) as client:
            return (await client.post("/v1/reports", json=body)).status_code

    statuses = await asyncio.gather(*(file(r) for r in reporters), *(file(reporters[0]) for _ in range(5)))
    assert sorted(statuses).count(201) == len(reporters)  # each reporter once; their repeats change nothing
    rows = await feedback_sql(system, "SELECT id, reporter_count FROM reports")
    filings = await feedback_sql(system, "SELECT count(*) FROM report_filings")
    assert (len(rows), rows[0].reporter_count, filings[0][0]) == (1, len(reporters), len(reporters))


async def test_the_reported_member_never_learns_who_reported_them(system: System) -> None:
    c = await community(system, members=2)
    reported, reporter = c.members
    filed = await report(system, c, reporter, reported, note="he keeps posting ads")
    async with await system.client(member(reported)) as client:
        assert (await client.get(f"/v1/reports/{filed['id']}")).status_code == 404
        assert (await client.get("/v1/reports")).json()["items"] == []
    async with await system.client(member(reporter)) as client:
        mine = (await client.get(f"/v1/reports/{filed['id']}")).json()
        assert [f["reporter_member_id"] for f in mine["filings"]] == [reporter]
    upheld = await resolve(system, filed["id"])
    async with await system.client(member(reported)) as client:
        own = await client.get(f"/v1/members/{reported}/standing", params={"community_id": c.id})
    assert own.status_code == 200
    assert own.json()["strikes"] == 1
    await system.drain()
    events = [
        *(await outbox(system, "moderation.report_created")),
        *(await outbox(system, "moderation.report_resolved")),
        *(await outbox(system, "moderation.sanction_applied")),
    ]
    assert len(events) == 3
    assert upheld["sanction_id"] is not None
    assert reporter not in json.dumps([own.json(), events])  # neither the standing nor what partners get


async def test_who_may_file_and_read_reports(system: System) -> None:
    c = await community(system, members=2)
    reported, reporter = c.members
    body = {"community_id": c.id, "reported_member_id": reported, "evidence": {"text": "rude"}}
    async with await system.client(partner("members:write")) as no_scope:
        assert (await no_scope.post("/v1/reports", json=body | {"reporter_member_id": reporter})).status_code == 403
    async with await system.client(partner("moderation:write")) as bot:
        missing = await bot.post("/v1/reports", json=body)
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["loc"] == ["body", "reporter_member_id"]
        assert (await bot.get("/v1/reports")).status_code == 403
    async with await system.client(staff("reviewer")) as reviewer:  # staff report in their own name
        assert (await reviewer.post("/v1/reports", json=body)).status_code == 201
        assert (await reviewer.get("/v1/reports")).status_code == 403
    filed = await report(system, c, reporter, reported)
    async with await system.client(OPERATOR) as op:
        assert (await op.get(f"/v1/reports/{filed['id']}")).json()["reporter_count"] == 1
    async with await system.client(member(reporter)) as client:
        assert (
            await client.post(f"/v1/reports/{filed['id']}/resolve", json={"decision": "dismiss"})
        ).status_code == 403


async def test_invalid_reports_are_problems_and_change_nothing(system: System) -> None:
    c = await community(system, members=2)
    reported, reporter = c.members
    base = {"community_id": c.id, "reported_member_id": reported, "evidence": {"message_id": "x-1"}}
    cases = [
        (base | {"evidence": {}}, 422, "validation-error"),  # no evidence at all
        (base | {"evidence": {"url": "ftp://x"}}, 422, "validation-error"),
        (base | {"rule_code": "no-such-rule"}, 422, "validation-error"),
        (base | {"reported_member_id": reporter}, 422, "validation-error"),  # oneself
        (base | {"reported_member_id": str(uuid.uuid4())}, 422, "validation-error"),  # not in the community
        (base | {"community_id": str(uuid.uuid4())}, 403, "not-a-community-member"),
    ]
    async with await system.client(member(reporter)) as client:
        for body, status, slug in cases:
            response = await client.post("/v1/reports", json=body)
            assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), body
            assert response.json()["type"] == problem_type(slug)
    assert await feedback_sql(system, "SELECT id FROM reports") == []
    assert await outbox(system, "moderation.report_created") == []


async def test_resolution_is_once_and_upholding_names_a_rule(system: System) -> None:
    c = await community(system, members=2)
    reported, reporter = c.members
    filed = await report(system, c, reporter, reported, rule_code=None)
    async with await system.client(AGENT) as client:
        url = f"/v1/reports/{filed['id']}/resolve"
        unnamed = await client.post(url, json={"decision": "uphold"})
        assert unnamed.status_code == 422
        assert unnamed.json()["errors"][0]["loc"] == ["body", "rule_code"]
        unknown = await client.post(url, json={"decision": "uphold", "rule_code": "no-jokes"})
        assert unknown.status_code == 422
        assert (await client.post(url, json={"decision": "maybe"})).status_code == 422
        assert (await client.get(f"/v1/reports/{filed['id']}")).json()["status"] == "open"
        assert (await standing(system, c, reported))["strikes"] == 0  # nothing changed
        dismissed = await client.post(url, json={"decision": "dismiss", "note": "a joke"})
        assert (dismissed.status_code, dismissed.json()["decision"]) == (200, "dismiss")
        again = await client.post(url, json={"decision": "uphold", "rule_code": "no-spam"})
        assert (again.status_code, again.json()["type"]) == (409, problem_type("report-already-resolved"))
        assert (
            await client.post(f"/v1/reports/{uuid.uuid4()}/resolve", json={"decision": "dismiss"})
        ).status_code == 404
    assert (await standing(system, c, reported))["strikes"] == 0
    [resolved] = await outbox(system, "moderation.report_resolved")
    assert (resolved["decision"], resolved["sanction_id"]) == ("dismiss", None)
