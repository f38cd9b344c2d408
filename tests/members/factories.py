"""Small typed factories for the members tests (over HTTP, so they work through any door)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.system import staff

OPERATOR = staff("operator")
ANALYST = staff("analyst")
ADMIN = staff("admin")


async def create_community(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Community {uuid.uuid4().hex[:6]}", **fields}
    response = await client.post("/v1/communities", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_member(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"external_id": f"ext-{uuid.uuid4().hex[:10]}", "display_name": "Alice", **fields}
    response = await client.post("/v1/members", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def join(client: httpx.AsyncClient, community_id: str, member_id: str) -> httpx.Response:
    return await client.post(f"/v1/communities/{community_id}/members", json={"member_id": member_id})


async def record(client: httpx.AsyncClient, **event: Any) -> httpx.Response:
    return await client.post("/v1/events", json={"type": "check_in", **event})


async def outbox_events(system: Any, event_type: str) -> list[dict[str, Any]]:
    """The members outbox events of one type, oldest first (the data as written; each event
    of a batch row in its order)."""
    import sqlalchemy as sa

    from services.members.db import kit_tables

    outbox = kit_tables.outbox
    async with system.state("members").db.session() as session:
        rows = await session.execute(
            sa.select(outbox.c.id, outbox.c.data, outbox.c.batch_size)
            .where(outbox.c.type == event_type)
            .order_by(outbox.c.seq)
        )
        return [
            data for row in rows for data in ([row.data] if row.batch_size is None else [e["data"] for e in row.data])
        ]
