"""Helpers for the feedback tests: every call goes through the gateway with real credentials."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from services.common.identity import Identity
from tests.system import System, member, staff

Api = Callable[[Identity], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api(system: System) -> Api:
    @asynccontextmanager
    async def _client(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
        async with await system.client(identity) as client:
            yield client

    return _client


async def file_ticket(api: Api, member_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    body = {"subject": "Order missing", "body": "My tea never arrived.", "category": "complaint"} | fields
    async with api(member(member_id)) as client:
        response = await client.post("/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


AGENT = staff("agent", id=str(uuid.UUID(int=1)))


async def outbox(system: System, type_: str) -> list[dict[str, Any]]:
    """The data of every `type_` event feedback wrote, oldest first."""
    import sqlalchemy as sa

    from services.feedback.db import kit_tables

    t = kit_tables.outbox
    async with system.state("feedback").db.engine.connect() as conn:
        rows = await conn.execute(sa.select(t.c.data).where(t.c.type == type_).order_by(t.c.occurred_at, t.c.id))
        return [dict(row.data) for row in rows]
