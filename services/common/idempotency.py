"""The `Idempotency-Key` store (semantics in API.md "Conventions").

A key is scoped to the caller. The first request claims it in its own short
transaction; the route's effect and the stored answer then commit together in the
request's transaction, so a stored answer always matches a change that happened. A
repeat with the same body gets the stored answer; a different body is 422; a repeat
while the first is in flight is 409. A failed first attempt releases its claim, so the
client may retry. Keys are kept at least 24 h (`KEEP_FOR`; the housekeeping job removes
older ones, see `services.common.jobs.housekeeping`).
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

from services.common.db import Database, on_rollback, utcnow
from services.common.events.tables import KitTables
from services.common.identity import Identity
from services.common.problems import Conflict, Unprocessable

KEEP_FOR = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)  # a claim older than this is from a crashed request

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Makes a retry of this request safe"),
]


def request_fingerprint(payload: Any, operation: str | None = None) -> str:
    document = (
        {"operation": operation, "payload": jsonable_encoder(payload)} if operation else jsonable_encoder(payload)
    )
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key_reused() -> Unprocessable:
    return Unprocessable(
        "This Idempotency-Key was used with a different request.",
        slug="idempotency-key-reused",
        title="Idempotency key reused",
    )


def _in_flight() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still being processed; retry later.",
        slug="idempotency-key-in-use",
        title="Request in progress",
        headers={"Retry-After": "1"},
    )


async def _claim(db: Database, tables: KitTables, caller: str, key: str, fingerprint: str) -> Response | None:
    """Claim the key (None) or answer for it: the stored response, 409 or 422."""
    table = tables.idempotency_keys
    this_key = (table.c.caller == caller) & (table.c.key == key)
    for _ in range(3):  # a claim released between our insert and our read: try again
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
            row = (await session.execute(sa.select(table).where(this_key))).one_or_none()
            if row is None:
                continue
            if row.request_hash != fingerprint:
                raise _key_reused()
            if row.completed_at is not None:
                return Response(
                    content=row.response_body,
                    status_code=row.status_code,
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
            if now - row.created_at < IN_FLIGHT_TIMEOUT:
                raise _in_flight()
            # The first attempt died without finishing: take the claim over, once. The
            # conditional update lets only one of several concurrent retries win.
            taken = await session.execute(
                table.update()
                .where(this_key, table.c.completed_at.is_(None), table.c.created_at == row.created_at)
                .values(created_at=now)
            )
            await session.commit()
            if _rowcount(taken) == 1:
                return None
            raise _in_flight()
    raise _in_flight()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


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
    operation: str | None = None,
) -> Response:
    """Run `action` once per (caller, key, body); without a key, just run it.

    Call it before the route writes anything: the claim commits on its own connection.
    `operation` (e.g. "POST /v1/redemptions") makes a key reused on another endpoint a 422.
    The stored answer commits with the request's transaction; if that transaction rolls
    back (the action failed, a later error, a failed commit) the claim is released, so
    the client may retry with the same key.
    """
    if key is None:
        result = await action()
        return JSONResponse(jsonable_encoder(result), status_code=status_code)
    if not key.strip():
        raise Unprocessable("The Idempotency-Key header is empty.", slug="validation-error")
    replay = await _claim(db, tables, caller.key, key, request_fingerprint(payload, operation))
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

    async def release() -> None:
        await _release(db, tables, caller.key, key)

    on_rollback(session, release)
    return Response(content=body, status_code=status_code, media_type="application/json")
