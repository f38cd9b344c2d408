"""Posts through the gateway: the status machine, review roles, events, edits, the calendar."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.common.db import utcnow
from services.content.posts.service import publish_due
from tests.content.factories import (
    OPERATOR,
    PROBLEMS,
    REVIEWER,
    approved_post,
    content_events,
    create_community,
    schedule,
    set_policy,
    z,
)
from tests.system import System, member, staff

# A weekday morning in Shanghai (10:00 local), far enough ahead for every test.
MORNING = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)


async def test_the_whole_workflow_with_roles_and_events(system: System) -> None:
    community_id = await create_community(system)
    async with await system.client(OPERATOR) as op:
        created = await op.post(
            "/v1/posts", json={"community_id": community_id, "title": "Quiz", "body": "Pick", "kind": "tip"}
        )
        assert created.status_code == 201, created.text
        post = created.json()
        assert (post["status"], post["publish_at"], post["options"]) == ("draft", None, None)
        post_id = post["id"]
        assert (await op.post(f"/v1/posts/{post_id}/approve")).status_code == 403  # operators do not review
        assert (await op.post(f"/v1/posts/{post_id}/schedule", json={"publish_at": z(MORNING)})).status_code == 409
        assert (await op.post(f"/v1/posts/{post_id}/submit")).json()["status"] == "in_review"
        wrong = await op.post(f"/v1/posts/{post_id}/submit")
        assert wrong.status_code == 409
        assert wrong.json()["type"] == PROBLEMS + "invalid-transition"
        assert (await op.patch(f"/v1/posts/{post_id}", json={"title": "x"})).status_code == 409  # in review
    async with await system.client(REVIEWER) as rev:
        rejected = await rev.post(f"/v1/posts/{post_id}/reject", json={"reason": "Too vague"})
        assert (rejected.json()["status"], rejected.json()["rejection_reason"]) == ("rejected", "Too vague")
        assert (await rev.post(f"/v1/posts/{post_id}/approve")).status_code == 409
        assert (await rev.patch(f"/v1/posts/{post_id}", json={"title": "x"})).status_code == 403
        assert (await rev.get(f"/v1/posts/{post_id}")).status_code == 200  # reviewers read
    async with await system.client(OPERATOR) as op:
        edited = await op.patch(f"/v1/posts/{post_id}", json={"title": "Quiz night", "body": "Tuesday 20:00"})
        assert (edited.status_code, edited.json()["title"]) == (200, "Quiz night")
        assert (await op.post(f"/v1/posts/{post_id}/submit")).json()["rejection_reason"] is None
    async with await system.client(REVIEWER) as rev:
        approved = (await rev.post(f"/v1/posts/{post_id}/approve")).json()
        assert approved["status"] == "approved"
        assert approved["reviewer_id"] == REVIEWER.id
    async with await system.client(OPERATOR) as op:
        assert (await op.patch(f"/v1/posts/{post_id}", json={"title": "y"})).status_code == 409
        scheduled = await op.post(f"/v1/posts/{post_id}/schedule", json={"publish_at": z(MORNING)})
        assert (scheduled.status_code, scheduled.json()["status"]) == (200, "scheduled"), scheduled.text
        cancelled = (await op.post(f"/v1/posts/{post_id}/cancel")).json()
        assert (cancelled["status"], cancelled["publish_at"]) == ("approved", None)
        assert (await op.post(f"/v1/posts/{post_id}/cancel")).status_code == 409
        past = await op.post(f"/v1/posts/{post_id}/schedule", json={"publish_at": z(utcnow() - timedelta(minutes=1))})
        assert (past.status_code, past.json()["type"]) == (422, PROBLEMS + "publish-at-in-past")
        assert (await op.post(f"/v1/posts/{post_id}/schedule", json={"publish_at": z(MORNING)})).status_code == 200
    async with system.state("content").db.session() as session:
        published = await publish_due(session, MORNING + timedelta(seconds=1))
        await session.commit()
    assert [str(p.id) for p in published] == [post_id]
    async with await system.client(OPERATOR) as op:
        final = (await op.get(f"/v1/posts/{post_id}")).json()
        assert final["status"] == "published"
        assert (await op.post(f"/v1/posts/{post_id}/cancel")).status_code == 409
    types = [e["type"] for e in await content_events(system)]
    assert types == [
        "content.post_submitted",
        "content.post_rejected",
        "content.post_submitted",
        "content.post_approved",
        "content.post_scheduled",
        "content.post_cancelled",
        "content.post_scheduled",
        "content.post_published",
    ]
    (event,) = await content_events(system, "content.post_published")
    assert (event["post_id"], event["body"], event["options"]) == (post_id, "Tuesday 20:00", None)


async def test_validation_and_access(system: System) -> None:
    community_id = await create_community(system)
    base = {"community_id": community_id, "title": "t", "body": "b"}
    async with await system.client(OPERATOR) as op:
        for body in (
            base | {"kind": "poll"},
            base | {"kind": "poll", "options": ["a"]},
            base | {"kind": "poll", "options": ["a", "a"]},
            base | {"kind": "tip", "options": ["a", "b"]},
            base | {"kind": "rumour"},
            base | {"kind": "tip", "title": ""},
        ):
            assert (await op.post("/v1/posts", json=body)).status_code == 422, body
        unknown = await op.post("/v1/posts", json=base | {"kind": "tip", "community_id": str(uuid.uuid4())})
        assert (unknown.status_code, unknown.json()["type"]) == (404, PROBLEMS + "community-not-found")
        assert (await op.get(f"/v1/posts/{uuid.uuid4()}")).status_code == 404
    for caller in (member(uuid.uuid4()), staff("agent")):
        async with await system.client(caller) as client:
            assert (await client.post("/v1/posts", json=base | {"kind": "tip"})).status_code == 403
            assert (await client.get("/v1/posts")).status_code == 403


async def test_the_calendar_filters_and_pages_by_publication_time(system: System) -> None:
    community_id = await create_community(system)
    other = await create_community(system)
    await set_policy(system, community_id, min_gap_minutes=0, quiet_hours=None)
    ids = [await approved_post(system, community_id) for _ in range(5)]
    for i, post_id in enumerate(reversed(ids)):  # scheduled in reverse order of creation
        assert (await schedule(system, post_id, MORNING + timedelta(hours=i))).status_code == 200
    draft_elsewhere = await approved_post(system, other)
    async with await system.client(REVIEWER) as rev:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"community_id": community_id, "status": "scheduled", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await rev.get("/v1/posts", params=params)).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))  # by publish_at
        window = {"from": z(MORNING + timedelta(hours=1)), "to": z(MORNING + timedelta(hours=3))}
        in_window = (await rev.get("/v1/posts", params={"community_id": community_id} | window)).json()["items"]
        assert [p["id"] for p in in_window] == [ids[3], ids[2]]
        approved_only = (await rev.get("/v1/posts", params={"status": "approved"})).json()["items"]
        assert [p["id"] for p in approved_only] == [draft_elsewhere]
        assert (await rev.get("/v1/posts", params={"cursor": "junk"})).status_code == 422
