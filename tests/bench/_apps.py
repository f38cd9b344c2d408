"""App factories the benches start with uvicorn (`--factory tests.bench._apps:<name>`).

- `gateway`: the production gateway, real authentication included, with its upstream pool
  sized by `QUNYUN_BENCH_POOL`. `QUNYUN_BENCH_TRANSPORT=httpx` swaps the production HTTP
  client's transport (aiohttp) for httpx's own, to compare the two.
- `anchor`: the yardstick the targets are stated against: bare FastAPI answering
  `GET /v1/members/{id}` with one asyncpg primary-key SELECT on the members database
  (`QUNYUN_MEMBERS_DATABASE_URL`, or the template's), a pool of `QUNYUN_DB_POOL_SIZE`
  connections, no auth, no logs, no metrics.

The services run their production factories (`services.<name>.app:create_app`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, HTTPException, Request

from services.common.app import aiohttp_transport
from services.common.settings import get_settings


def gateway() -> FastAPI:
    from services.gateway.app import create_app

    size = int(os.environ.get("QUNYUN_BENCH_POOL", "200"))
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    if os.environ.get("QUNYUN_BENCH_TRANSPORT") == "httpx":
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
    else:
        transport = aiohttp_transport(limits)  # what production uses (build_http_client)
    return create_app(get_settings(), transport=transport)


# The same row members reads for this GET (last activity from the narrow `member_activity`).
ANCHOR_QUERY = (
    "SELECT id, external_id, display_name, tags, attributes, consent_marketing, joined_at, "
    "(SELECT a.last_active_at FROM member_activity a WHERE a.member_id = members.id) AS last_active_at, "
    "created_at, updated_at FROM members WHERE id = $1 AND erased_at IS NULL"
)


def anchor() -> FastAPI:
    settings = get_settings()
    dsn = settings.database_url_for("members").replace("postgresql+asyncpg://", "postgresql://")
    size = settings.db_pool_size

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncpg.create_pool(dsn, min_size=size, max_size=size) as pool:
            app.state.pool = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/members/{member_id}")
    async def get_member(member_id: uuid.UUID, request: Request) -> dict[str, Any]:
        row = await request.app.state.pool.fetchrow(ANCHOR_QUERY, member_id)
        if row is None:
            raise HTTPException(404)
        return dict(row)

    return app
