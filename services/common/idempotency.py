"""The `Idempotency-Key` store (semantics in API.md "Conventions").

A key is scoped to the caller. The first request claims it in its own short
transaction; the route's effect and the stored answer then commit together in the
request's transaction, so a stored answer always matches a change that happened. A
repeat with the same body gets the stored answer; a different body is 422; a repeat
while the first is in flight is 409. A failed first attempt releases its claim, so the
client may retry. Keys are kept at least 24 h (`purge_expired` removes older ones).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from services.common.db import Database, utcnow
from services.common.events.tables import KitTables
from services.common.identity import Identity
from services.common.problems import Conflict, Unprocessable

KEEP_FOR = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)  # a claim older than this is from a crashed request

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Makes a retry of this request safe"),
]


def request_fingerprint(payload: Any) -> str:
    canonical = json.dumps(jsonable_encoder(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _claim(db: Database, tables: KitTables, caller: str, key: str, fingerprint: str) -> Response | None:
    table = tables.idempotency_keys
    now = utcnow()
    async with db.session() as session:
        try:
            await session.execute(
                table.insert().values(caller=caller, key=key, request_hash=fingerprint, created_at=now)
            )
            await session.commit()
            return None
        except IntegrityError:
            await session.rollback()
        row = (
            await session.execute(sa.select(table).where(table.c.caller == caller, table.c.key == key))
        ).one_or_none()
        if row is None:  # released between our insert and our read: try once more
            return await _claim(db, tables, caller, key, fingerprint)
        if row.request_hash != fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request body.",
                slug="idempotency-key-reused",
                title="Idempotency key reused",
            )
        if row.completed_at is None:
            if now - row.created_at < IN_FLIGHT_TIMEOUT:
                raise Conflict(
                    "A request with this Idempotency-Key is still being processed.",
                    slug="idempotency-key-in-use",
                    title="Request in progress",
                )
            # The first attempt died without finishing: take the claim over.
            await session.execute(
                table.update().where(table.c.caller == caller, table.c.key == key).values(created_at=now)
            )
            await session.commit()
            return None
        return Response(
            content=row.response_body,
            status_code=row.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )


async def _release(db: Database, tables: KitTables, caller: str, key: str) -> None:
    table = tables.idempotency_keys
    async with db.session() as session:
        await session.execute(
            table.delete().where(table.c.caller == caller, table.c.key == key, table.c.completed_at.is_(None))
        )
        await session.commit()


async def run_idempotent(
    *,
    db: Database,
    tables: KitTables,
    session: AsyncSession,
    caller: Identity,
    key: str | None,
    payload: Any,
    status_code: int,
    action: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """Run `action` once per (caller, key, body); without a key, just run it."""
    if key is None:
        result = await action()
        return JSONResponse(jsonable_encoder(result), status_code=status_code)
    replay = await _claim(db, tables, caller.key, key, request_fingerprint(payload))
    if replay is not None:
        return replay
    try:
        result = await action()
        body = json.dumps(jsonable_encoder(result), separators=(",", ":"))
        table = tables.idempotency_keys
        await session.execute(
            table.update()
            .where(table.c.caller == caller.key, table.c.key == key)
            .values(status_code=status_code, response_body=body, completed_at=utcnow())
        )
    except BaseException:
        await session.rollback()
        await _release(db, tables, caller.key, key)
        raise
    return Response(content=body, status_code=status_code, media_type="application/json")


async def purge_expired(session: AsyncSession, tables: KitTables) -> int:
    table = tables.idempotency_keys
    result = await session.execute(table.delete().where(table.c.created_at < utcnow() - KEEP_FOR))
    return int(getattr(result, "rowcount", 0) or 0)
