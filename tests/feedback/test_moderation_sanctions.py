"""The sanction ladder, direct sanctions and lifting, the expiry job, standing, appeals,
earning while muted, erasure and export."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.common.db import Database
from services.common.problems import problem_type
from services.feedback.moderation.sanctions.expiry import SanctionExpiry
from tests.content.factories import OPERATOR
from tests.feedback.conftest import AGENT, Api, file_ticket, outbox
from tests.feedback.moderation_factories import (
    PROBLEM,
    community,
    feedback_sql,
    report,
    resolve,
    sanction,
    standing,
    uphold_new_report,
)
from tests.system import System, member, partner, staff


async def applied_action(system: System, resolved: dict[str, object]) -> str | None:
    if resolved["sanction_id"] is None:
        return None
    [row] = await feedback_sql(system, "SELECT action FROM sanctions WHERE id = :id", id=resolved["sanction_id"])
    return str(row.action)


async def test_the_ladder_counts_only_strikes_that_have_not_expired(system: System) -> None:
    c = await community(system, members=2)
    spammer = c.members[0]
    assert await applied_action(system, await uphold_new_report(system, c, spammer)) == "warn"
    # 91 days pass: the first strike no longer counts (default strike_ttl_days 90).
    await feedback_sql(
        system, "UPDATE strikes SET created_at = created_at - interval '91 days', expires_at = now() - interval '1 day'"
    )
    assert (await standing(system, c, spammer))["strikes"] == 0
    assert await applied_action(system, await uphold_new_report(system, c, spammer)) == "warn"  # 1 counts, not 2
    before = datetime.now(UTC)
    muted = await uphold_new_report(system, c, spammer)
    assert await applied_action(system, muted) == "mute"
    assert await applied_action(system, await uphold_new_report(system, c, spammer)) == "ban"
    now = await standing(system, c, spammer)
    assert now["strikes"] == 3
    assert len(now["strike_history"]) == 4
    assert [s["action"] for s in now["history"]] == ["ban", "mute", "warn", "warn"]
    mute = next(s for s in now["active"] if s["action"] == "mute")
    until = datetime.fromisoformat(mute["until"])
    assert before + timedelta(hours=24) <= until <= datetime.now(UTC) + timedelta(hours=24)
    assert {s["action"]: s["until"] for s in now["active"]}["ban"] is None  # permanent
    applied = await outbox(system, "moderation.sanction_applied")
    assert [e["action"] for e in applied] == ["warn", "warn", "mute", "ban"]
    assert all(e["member_id"] == spammer and e["rule_code"] == "no-spam" for e in applied)


async def test_a_severe_rule_bans_at_once_and_a_custom_ladder_applies(system: System) -> None:
    c = await community(system, members=3)
    async with await system.client(OPERATOR) as op:
        ladder = {"strike_ttl_days": 7, "steps": [{"strikes": 1, "action": "mute", "minutes": 30}]}
        assert (await op.put(f"/v1/communities/{c.id}/sanction-ladder", json=ladder)).status_code == 200
    assert await applied_action(system, await uphold_new_report(system, c, c.members[0], "no-doxxing")) == "ban"
    assert await applied_action(system, await uphold_new_report(system, c, c.members[1])) == "mute"
    [strike] = (await standing(system, c, c.members[1]))["strike_history"]
    lasts = datetime.fromisoformat(strike["expires_at"]) - datetime.fromisoformat(strike["created_at"])
    assert lasts == timedelta(days=7)


async def test_operators_sanction_directly_and_lift(system: System) -> None:
    c = await community(system, members=2)
    target = c.members[0]
    muted = await sanction(system, c, target, "mute", minutes=60)
    assert (muted["status"], muted["action"]) == ("active", "mute")
    async with await system.client(AGENT) as client:  # agents work the queue; direct sanctions are operators'
        body = {"member_id": target, "community_id": c.id, "action": "ban", "rule_code": "no-spam", "reason": "x"}
        assert (await client.post("/v1/sanctions", json=body)).status_code == 403
        assert (await client.post(f"/v1/sanctions/{muted['id']}/lift")).status_code == 403
    async with await system.client(OPERATOR) as op:
        lifted = await op.post(f"/v1/sanctions/{muted['id']}/lift", json={"reason": "mistake"})
        assert (lifted.status_code, lifted.json()["status"], lifted.json()["end_reason"]) == (200, "lifted", "lifted")
        again = await op.post(f"/v1/sanctions/{muted['id']}/lift")
        assert (again.status_code, again.json()["type"]) == (409, problem_type("sanction-not-active"))
        assert (await op.post(f"/v1/sanctions/{uuid.uuid4()}/lift")).status_code == 404
        bad: list[dict[str, object]] = [
            {"action": "mute"},  # no minutes
            {"action": "warn", "minutes": 5},
            {"action": "ban", "rule_code": "no-jokes"},  # not a rule of the community
            {"action": "ban", "member_id": str(uuid.uuid4())},  # not a member
            {"action": "ban", "reason": ""},
        ]
        base: dict[str, object] = {"member_id": target, "community_id": c.id, "rule_code": "no-spam", "reason": "spam"}
        for fields in bad:
            response = await op.post("/v1/sanctions", json=base | fields)
            assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), fields
    assert len(await outbox(system, "moderation.sanction_applied")) == 1  # the refused ones wrote nothing
    [event] = await outbox(system, "moderation.sanction_lifted")
    assert (event["sanction_id"], event["reason"]) == (muted["id"], "lifted")
    assert (await standing(system, c, target))["active"] == []


async def test_standing_is_for_moderators_the_bot_and_the_member_only(system: System) -> None:
    c = await community(system, members=2)
    target, other = c.members
    await sanction(system, c, target, "warn")
    url = f"/v1/members/{target}/standing"
    for reader in (OPERATOR, AGENT, partner("moderation:write"), member(target)):
        async with await system.client(reader) as client:
            response = await client.get(url, params={"community_id": c.id})
            assert response.status_code == 200
            assert response.json()["history"][0]["action"] == "warn"
    async with await system.client(member(other)) as client:
        assert (await client.get(url)).status_code == 404
    for refused in (staff("analyst"), partner("members:write")):
        async with await system.client(refused) as client:
            assert (await client.get(url)).status_code == 403


async def test_an_expired_mute_lifts_itself_exactly_once_with_two_replicas(system: System) -> None:
    c = await community(system, members=1, rules=True)
    target = c.members[0]
    mutes = [await sanction(system, c, target, "mute", minutes=5) for _ in range(40)]
    await sanction(system, c, target, "mute", minutes=60)  # not due
    lifted_early = mutes.pop()
    async with await system.client(OPERATOR) as op:
        assert (await op.post(f"/v1/sanctions/{lifted_early['id']}/lift")).status_code == 200
    await feedback_sql(
        system, "UPDATE sanctions SET until = now() - interval '1 second' WHERE until < now() + interval '10 minutes'"
    )
    feedback = system.state("feedback")
    replicas = [Database(feedback.db.url, system.settings, info={"outbox": feedback.outbox}) for _ in range(2)]
    try:
        jobs = [SanctionExpiry(db, batch=7) for db in replicas]
        done = await asyncio.gather(*(job.run_once() for job in jobs for _ in range(3)))
    finally:
        for db in replicas:
            await db.dispose()
    assert sum(done) == len(mutes)
    expired = [e for e in await outbox(system, "moderation.sanction_lifted") if e["reason"] == "expired"]
    assert sorted(e["sanction_id"] for e in expired) == sorted(m["id"] for m in mutes)  # each once
    now = await standing(system, c, target)
    assert [s["action"] for s in now["active"]] == ["mute"]  # the 60-minute one
    assert {s["status"] for s in now["history"]} == {"expired", "lifted", "active"}


async def test_no_points_while_muted_the_activity_is_recorded_and_the_rule_skipped(system: System) -> None:
    c = await community(system, members=1)
    target = c.members[0]
    muted = await sanction(system, c, target, "mute", minutes=60)
    await system.drain()  # rewards learns of the mute from the event

    async def act(kind: str) -> None:
        async with await system.client(member(target)) as client:
            response = await client.post("/v1/events", json={"member_id": target, "community_id": c.id, "type": kind})
        assert response.status_code == 202, response.text
        await system.drain()

    await act("invite_accepted")
    async with await system.client(member(target)) as client:
        points = (await client.get(f"/v1/members/{target}/points")).json()
        [entry] = (await client.get(f"/v1/members/{target}/points/ledger")).json()["items"]
    assert (points["balance"], points["lifetime"]) == (0, 0)
    assert (entry["delta"], entry["reason"], entry["skipped_because"]) == (0, "skipped:invite_accepted", "muted")
    async with await system.client(OPERATOR) as op:
        assert (await op.post(f"/v1/sanctions/{muted['id']}/lift")).status_code == 200
    await system.drain()
    await act("invite_accepted")
    async with await system.client(member(target)) as client:
        assert (await client.get(f"/v1/members/{target}/points")).json()["balance"] == 20
        entries = (await client.get(f"/v1/members/{target}/points/ledger")).json()["items"]
    assert [(e["delta"], e["skipped_because"]) for e in entries] == [(20, None), (0, "muted")]


async def test_an_appeal_granted_lifts_the_ban_and_removes_the_strike(system: System, api: Api) -> None:
    c = await community(system, members=3)
    banned, reporter, bystander = c.members
    resolved = await uphold_new_report(system, c, banned, "no-doxxing")
    ban_id = resolved["sanction_id"]
    other_ban = (await uphold_new_report(system, c, bystander, "no-doxxing"))["sanction_id"]
    appeal = {"subject": "Unfair ban", "body": "That was my own number.", "category": "appeal"}
    async with await system.client(member(banned)) as client:
        not_mine = await client.post("/v1/tickets", json=appeal | {"sanction_id": other_ban})
        assert not_mine.status_code == 422
        assert not_mine.json()["errors"][0]["loc"] == ["body", "sanction_id"]
        wrong_kind = await client.post("/v1/tickets", json=appeal | {"category": "complaint", "sanction_id": ban_id})
        assert wrong_kind.status_code == 422
    async with await system.client(AGENT) as agent:
        assert (await agent.get("/v1/tickets")).json()["items"] == []  # the refused ones filed nothing
    ticket = await file_ticket(api, uuid.UUID(banned), **appeal, sanction_id=ban_id)
    assert ticket["sanction_id"] == ban_id
    async with await system.client(AGENT) as agent:
        other = await file_ticket(api, uuid.UUID(reporter))
        refused = await agent.post(f"/v1/tickets/{other['id']}/resolve", json={"appeal": "grant"})
        assert refused.status_code == 422  # not an appeal
        assert (await agent.get(f"/v1/tickets/{other['id']}")).json()["status"] == "new"
        granted = await agent.post(f"/v1/tickets/{ticket['id']}/resolve", json={"appeal": "grant"})
        assert granted.status_code == 200, granted.text
    now = await standing(system, c, banned)
    assert (now["strikes"], now["active"]) == (0, [])
    assert (now["history"][0]["status"], now["history"][0]["end_reason"]) == ("lifted", "appeal")
    assert now["strike_history"][0]["removed_at"] is not None
    lifted = [e for e in await outbox(system, "moderation.sanction_lifted") if e["sanction_id"] == ban_id]
    assert [e["reason"] for e in lifted] == ["appeal"]
    # A denied appeal is decided with its resolution: resolving it again cannot grant it.
    denied_appeal = await file_ticket(api, uuid.UUID(bystander), **appeal, sanction_id=other_ban)
    async with await system.client(AGENT) as agent:
        denied = await agent.post(f"/v1/tickets/{denied_appeal['id']}/resolve", json={"appeal": "deny"})
        assert denied.status_code == 200, denied.text
        again = await agent.post(f"/v1/tickets/{denied_appeal['id']}/resolve", json={"appeal": "grant"})
        assert (again.status_code, again.json()["type"]) == (409, "https://qunyun.dev/problems/invalid-transition")
    assert (await standing(system, c, bystander))["active"][0]["action"] == "ban"  # the other ban stands


async def test_erasure_pseudonymizes_reports_and_sanctions_and_keeps_the_counts(system: System) -> None:
    c = await community(system, members=3)
    reported, reporter, second = c.members
    filed = await report(system, c, reporter, reported, message_id="m-erase")
    await report(system, c, second, reported, message_id="m-erase")
    await resolve(system, filed["id"])
    async with system.direct("feedback", member(reporter)) as client:
        export = (await client.get(f"/internal/members/{reporter}/export")).json()["moderation"]
    assert [r["report_id"] for r in export["reports"]] == [filed["id"]]
    async with system.direct("feedback", member(reported)) as client:
        theirs = (await client.get(f"/internal/members/{reported}/export")).json()["moderation"]
    assert (theirs["reports"], theirs["standing"]["strikes"]) == ([], 1)
    async with await system.client(staff("admin")) as admin:
        for erased in (reporter, reported):
            assert (await admin.delete(f"/v1/members/{erased}")).status_code == 204
    await system.drain()
    [row] = await feedback_sql(system, "SELECT reported_member_id, reporter_count FROM reports")
    assert str(row.reported_member_id) != reported
    assert row.reporter_count == 2
    ids = {str(r[0]) for r in await feedback_sql(system, "SELECT reporter_member_id FROM report_filings")}
    assert second in ids
    assert reporter not in ids
    filings = await feedback_sql(system, "SELECT reporter_id, filed_by FROM report_filings")
    assert not [f for f in filings if reporter in f.reporter_id or reporter in f.filed_by]
    assert len(ids) == 2
    for table in ("strikes", "sanctions"):
        members = {str(r[0]) for r in await feedback_sql(system, f"SELECT member_id FROM {table}")}
        assert members == {str(row.reported_member_id)}  # the same pseudonym as on the report
    assert (await standing(system, c, reported))["history"] == []
