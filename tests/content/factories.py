"""Small helpers for content tests: communities and members made through members' API,
posts walked through the workflow, the content outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.content.db import kit_tables
from tests.system import System, staff

OPERATOR = staff("operator")
REVIEWER = staff("reviewer")
PROBLEMS = "https://qunyun.dev/problems/"


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def create_community(system: System, timezone: str = "Asia/Shanghai") -> str:
    async with await system.client(OPERATOR) as client:
        response = await client.post(
            "/v1/communities", json={"name": f"c-{uuid.uuid4().hex[:8]}", "timezone": timezone}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def create_member(system: System, community_id: str | None = None, *, marketing: bool = True) -> str:
    async with await system.client(OPERATOR) as client:
        response = await client.post(
            "/v1/members",
            json={
                "external_id": f"x-{uuid.uuid4().hex[:10]}",
                "display_name": "Mei",
                "consent": {"marketing": marketing},
            },
        )
        assert response.status_code == 201, response.text
        member_id = str(response.json()["id"])
        if community_id is not None:
            joined = await client.post(f"/v1/communities/{community_id}/members", json={"member_id": member_id})
            assert joined.status_code == 201, joined.text
    return member_id


async def set_policy(system: System, community_id: str, **fields: Any) -> dict[str, Any]:
    body = {"quiet_hours": {"start": "23:00", "end": "08:00"}, "max_promotions_per_day": 2, "min_gap_minutes": 60}
    body |= fields
    async with await system.client(OPERATOR) as client:
        response = await client.put(f"/v1/communities/{community_id}/publishing-policy", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def quiet_free_community(system: System, **contact: Any) -> str:
    """A community without quiet hours, so permits do not depend on the time of day."""
    community_id = await create_community(system)
    await set_policy(system, community_id, quiet_hours=None)  # permits inherit no quiet hours
    body = {"weekly_max": 3, "weekly_max_promotions": 1} | contact
    async with await system.client(OPERATOR) as op:
        response = await op.put(f"/v1/communities/{community_id}/contact-policy", json=body)
    assert response.status_code == 200, response.text
    return community_id


async def approved_post(system: System, community_id: str, kind: str = "announcement", **fields: Any) -> str:
    body = {"community_id": community_id, "title": "Hello", "body": "Welcome all", "kind": kind} | fields
    if kind == "poll":
        body.setdefault("options", ["Tuesday", "Thursday"])
    async with await system.client(OPERATOR) as client:
        created = await client.post("/v1/posts", json=body)
        assert created.status_code == 201, created.text
        post_id = str(created.json()["id"])
        assert (await client.post(f"/v1/posts/{post_id}/submit")).status_code == 200
    async with await system.client(REVIEWER) as client:
        approved = await client.post(f"/v1/posts/{post_id}/approve")
        assert approved.status_code == 200, approved.text
    return post_id


async def schedule(system: System, post_id: str, at: datetime) -> Any:
    async with await system.client(OPERATOR) as client:
        return await client.post(f"/v1/posts/{post_id}/schedule", json={"publish_at": z(at)})


async def content_events(system: System, event_type: str | None = None) -> list[dict[str, Any]]:
    outbox = kit_tables.outbox
    query = sa.select(outbox.c.type, outbox.c.data).order_by(outbox.c.seq)
    if event_type is not None:
        query = query.where(outbox.c.type == event_type)
    async with system.state("content").db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"type": row.type, **row.data} for row in rows]
