"""Polls (one vote per member, live results, `poll_voted` activity reaching members and
rewards), best times against a hand-computed histogram, erasure and export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.common.db import utcnow
from services.common.identity import SYSTEM
from services.content.posts.service import publish_due
from services.content.privacy.service import export_member
from tests.content.factories import (
    OPERATOR,
    PROBLEMS,
    approved_post,
    create_community,
    create_member,
    schedule,
    set_policy,
    z,
)
from tests.system import System, member


async def published_poll(system: System, community_id: str) -> str:
    post_id = await approved_post(system, community_id, "poll")
    at = utcnow() + timedelta(minutes=5)
    await set_policy(system, community_id, quiet_hours=None, min_gap_minutes=0)
    assert (await schedule(system, post_id, at)).status_code == 200
    async with system.state("content").db.session() as session:
        await publish_due(session, at + timedelta(seconds=1))
        await session.commit()
    return post_id


async def test_one_vote_per_member_and_live_results(system: System) -> None:
    community_id = await create_community(system)
    voter, other = await create_member(system, community_id), await create_member(system, community_id)
    outsider = await create_member(system)
    await system.drain()  # content learns the memberships
    post_id = await published_poll(system, community_id)
    async with await system.client(member(voter)) as client:
        first = await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Tuesday"})
        assert first.status_code == 201, first.text
        again = await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Thursday"})
        assert (again.status_code, again.json()["my_vote"]) == (200, "Tuesday")  # a repeat changes nothing
        unknown = await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Sunday"})
        assert (unknown.status_code, unknown.json()["type"]) == (422, PROBLEMS + "unknown-option")
        assert (await client.post(f"/v1/posts/{uuid.uuid4()}/votes", json={"option": "Tuesday"})).status_code == 404
    async with await system.client(member(other)) as client:
        assert (await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Thursday"})).status_code == 201
        results = (await client.get(f"/v1/posts/{post_id}/results")).json()
    assert results["options"] == [{"option": "Tuesday", "votes": 1}, {"option": "Thursday", "votes": 1}]
    assert (results["total"], results["my_vote"]) == (2, "Thursday")
    async with await system.client(member(outsider)) as client:
        refused = await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Tuesday"})
        assert (refused.status_code, refused.json()["type"]) == (403, PROBLEMS + "not-a-community-member")
        assert (await client.get(f"/v1/posts/{post_id}/results")).status_code == 403
    async with await system.client(OPERATOR) as op:
        assert (await op.get(f"/v1/posts/{post_id}/results")).json()["total"] == 2
    # poll_voted reaches members as activity, and from there rewards.
    await system.drain()
    async with system.state("members").db.engine.connect() as conn:
        recorded = await conn.scalar(sa.text("SELECT count(*) FROM activities WHERE type = 'poll_voted'"))
    assert recorded == 2


async def test_best_times_follow_a_hand_computed_histogram(system: System) -> None:
    community_id = await create_community(system)  # Asia/Shanghai, default quiet 23:00-08:00
    await set_policy(system, community_id, min_gap_minutes=60)
    zone = ZoneInfo("Asia/Shanghai")
    now = utcnow().astimezone(zone)
    # Two days ahead (local), so the slots are surely in the coming week and not past.
    day = (now + timedelta(days=2)).date()

    def local(hour: int, days: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, tzinfo=zone) - timedelta(days=days)

    # Histogram, hand-made a week earlier: 10:00 x5, 20:00 x3, 14:00 x2, 02:00 x9 (quiet).
    events = []
    for hour, count in ((10, 5), (20, 3), (14, 2), (2, 9)):
        events += [(local(hour, days=7), i) for i in range(count)]
    member_id = uuid.uuid4()
    envelopes = [
        {
            "id": str(uuid.uuid4()),
            "type": "activity.recorded",
            "source": "members",
            "occurred_at": z(at.astimezone(UTC)),
            "data": {
                "activity_id": str(uuid.uuid4()),
                "member_id": str(member_id),
                "community_id": community_id,
                "type": "check_in",
                "occurred_at": z(at.astimezone(UTC)),
                "local_date": at.date().isoformat(),
                "timezone": "Asia/Shanghai",
                "properties": {},
            },
        }
        for at, _ in events
    ]
    async with system.direct("content", SYSTEM) as client:
        assert (await client.post("/internal/events", json={"events": envelopes})).status_code == 200
        assert (await client.post("/internal/events", json={"events": envelopes})).status_code == 200  # redelivery
    # A post already at 10:30 that day pushes that day's 10:00 slot out (60-minute gap).
    blocker = await approved_post(system, community_id)
    assert (await schedule(system, blocker, local(10).replace(minute=30).astimezone(UTC))).status_code == 200
    async with await system.client(OPERATOR) as op:
        response = await op.get(f"/v1/communities/{community_id}/best-times", params={"count": 3})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    total = 5 + 3 + 2 + 9
    # Hour of week 10:00 (that weekday) is blocked by the gap and 02:00 is quiet, so the
    # ranking is 20:00 (3/19), then 14:00 (2/19), then hours with no activity (score 0).
    assert [(i["at"], i["score"]) for i in items[:2]] == [
        (z(local(20).astimezone(UTC)), round(3 / total, 4)),
        (z(local(14).astimezone(UTC)), round(2 / total, 4)),
    ]
    assert items[2]["score"] == 0.0
    for item in items:
        hour = datetime.fromisoformat(item["at"]).astimezone(zone).hour
        assert 8 <= hour < 23


async def test_erasure_drops_identity_and_export_shows_everything(system: System) -> None:
    community_id = await create_community(system)
    member_id = await create_member(system, community_id)
    await system.drain()
    post_id = await published_poll(system, community_id)
    async with await system.client(member(member_id)) as client:
        assert (await client.post(f"/v1/posts/{post_id}/votes", json={"option": "Tuesday"})).status_code == 201
    async with await system.client(OPERATOR) as op:
        permit = await op.post(
            "/v1/contact-permits", json={"member_id": member_id, "community_id": community_id, "kind": "survey"}
        )
        assert permit.status_code == 201, permit.text
    async with system.direct("content", member(member_id)) as client:
        exported = (await client.get(f"/internal/members/{member_id}/export")).json()
        assert (await client.get(f"/internal/members/{uuid.uuid4()}/export")).status_code == 404
    assert exported["marketing_consent"] is True
    assert [v["option"] for v in exported["votes"]] == ["Tuesday"]
    assert len(exported["contact_permits"]) == 1
    assert [c["community_id"] for c in exported["communities"]] == [community_id]
    async with await system.client(OPERATOR.model_copy(update={"roles": ("admin",)})) as admin:
        assert (await admin.delete(f"/v1/members/{member_id}")).status_code == 204
    await system.drain()
    async with system.state("content").db.session() as session:
        after = await export_member(session, uuid.UUID(member_id))
    assert (after.marketing_consent, after.votes, after.contact_permits, after.communities) == (None, [], [], [])
    async with await system.client(OPERATOR) as op:
        assert (await op.get(f"/v1/posts/{post_id}/results")).json()["total"] == 1  # the vote stays, anonymous
