"""App factories the benches start with uvicorn (`--factory tests.bench._apps:<name>`).

- `gateway`: the production gateway. While the auth work is not merged (no auth routes),
  the caller comes from the documented `app.state.identify_caller` seam: a request with
  `X-Bench-Caller: admin` is an admin. With auth merged, the real resolver stays and the
  bench logs in. `QUNYUN_BENCH_TRANSPORT=httpx` swaps the production HTTP client's
  transport for httpx's own, to compare the two.
- `members`: the real members service, plus (only while it has no `GET /v1/members/{id}`
  yet) a bench route of that shape answering a fixed member without a database read.
"""

from __future__ import annotations

import os
import uuid

import httpx
from fastapi import APIRouter, FastAPI
from starlette.requests import Request

from services.common.app import aiohttp_transport, create_service_app
from services.common.identity import Caller, Identity
from services.common.settings import get_settings
from services.gateway.auth import auth_routers
from services.members import app as members_app
from services.members.db import kit_tables as members_kit_tables

BENCH_CALLER_HEADER = "X-Bench-Caller"
BENCH_ADMIN = Identity(kind="staff", id=str(uuid.UUID(int=1)), roles=("admin",))


def auth_merged() -> bool:
    return bool(auth_routers())


async def bench_resolver(request: Request) -> Identity | None:
    return BENCH_ADMIN if request.headers.get(BENCH_CALLER_HEADER) == "admin" else None


def gateway() -> FastAPI:
    from services.gateway.app import create_app

    settings = get_settings()
    size = int(os.environ.get("QUNYUN_BENCH_POOL", "200"))
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    if os.environ.get("QUNYUN_BENCH_TRANSPORT") == "httpx":
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
    else:
        transport = aiohttp_transport(limits)  # what production uses (build_http_client)
    app = create_app(settings, transport=transport)
    if not auth_merged():
        app.state.identify_caller = bench_resolver
    return app


def members_has_member_read(app: FastAPI) -> bool:
    return any(getattr(r, "path", None) == "/v1/members/{member_id}" for r in app.routes)


def members() -> FastAPI:
    app = members_app.create_app()
    if members_has_member_read(app):
        return app
    router = APIRouter()

    @router.get("/v1/members/{member_id}")
    async def read_member(member_id: uuid.UUID, caller: Caller) -> dict[str, object]:
        """A member-shaped answer (bench stand-in until the members routes are merged)."""
        return {"id": str(member_id), "external_id": "bench-1", "display_name": "Bench", "tags": [], "attributes": {}}

    return create_service_app(
        "members", get_settings(), kit_tables=members_kit_tables, routers=[router], title="Qunyun members (bench)"
    )
