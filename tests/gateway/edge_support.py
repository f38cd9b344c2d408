"""Test support for the gateway's edge: a caller resolver and a gateway in front of echo services.

`caller_headers(identity)` + `install_header_resolver(app)`: the gateway's
`app.state.identify_caller` seam answers from an `X-Test-Caller` header (the Identity as
JSON; `bad` means invalid credentials), so routing tests need no real credentials.

`edge_gateway()`: the real gateway app with real service apps (`create_service_app`: the
internal-token middleware, problem handlers, OpenAPI endpoint) whose routes echo what
they received. The routes copy the contract's path templates that make routing hard
(members vs rewards under `/v1/members/{id}`, literal-vs-parameter siblings), plus a slow
one for timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.requests import Request as StarletteRequest

from services.common.app import create_service_app
from services.common.identity import Caller, Identity
from services.common.problems import Unauthorized
from services.common.settings import DOMAIN_SERVICES, SERVICES, Settings
from services.gateway.app import create_app
from tests.pg import fresh_database
from tests.system import RoutingTransport, test_settings

TEST_CALLER_HEADER = "X-Test-Caller"
SLOW_SECONDS = 3.0
# A stream longer in total than the gateway's upstream timeout, each part well within it.
TRICKLE_PARTS, TRICKLE_PAUSE = 5, 0.2


def caller_headers(identity: Identity | None) -> dict[str, str]:
    return {TEST_CALLER_HEADER: identity.model_dump_json()} if identity else {}


async def header_resolver(request: StarletteRequest) -> Identity | None:
    raw = request.headers.get(TEST_CALLER_HEADER)
    if raw is None:
        return None
    if raw == "bad":
        raise Unauthorized("The test credentials are invalid.")
    return Identity.model_validate_json(raw)


@contextlib.contextmanager
def install_header_resolver(app: FastAPI) -> Iterator[None]:
    """Swap the gateway's caller resolver for `header_resolver` for the duration."""
    previous = app.state.identify_caller
    app.state.identify_caller = header_resolver
    try:
        yield
    finally:
        app.state.identify_caller = previous


# Two different schemas with one name, as two services may well have: the merge must rename one.
class MembersSchemas:
    class ThingCreate(BaseModel):
        external_id: str
        display_name: str


class ContentSchemas:
    class ThingCreate(BaseModel):
        title: str
        body: str


async def _echo(request: Request, caller: Identity, default_status: int = 200) -> Response:
    """Answers with everything the service received (status from `?status=`)."""
    body = await request.body()
    status = int(request.query_params.get("status", default_status))
    if status == 204:
        return Response(status_code=204, headers={"X-Upstream": request.app.title})
    return JSONResponse(
        {
            "service": request.app.title,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
            "headers": dict(request.headers),
            "caller": caller.model_dump(mode="json"),
        },
        status_code=status,
        headers={"X-Upstream": request.app.title, "Keep-Alive": "timeout=5", "Cache-Control": "no-store"},
    )


def _echo_router(service: str) -> APIRouter:
    router = APIRouter()

    def add(path: str, *methods: str) -> None:
        for method in methods:
            name = f"{method.lower()}_{service}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"

            async def endpoint(request: Request, caller: Caller) -> Response:
                return await _echo(request, caller)

            router.add_api_route(path, endpoint, methods=[method], name=name, operation_id=name)

    if service == "members":
        add("/v1/members", "GET")
        add("/v1/members/{member_id}", "GET", "PATCH", "DELETE")
        add("/v1/members/by-external-id/{external_id}", "PUT")
        add("/v1/communities/{community_id}/members/{member_id}", "DELETE")
        add("/internal/members/resolve", "GET")

        @router.post("/v1/members", status_code=201, operation_id="create_member")
        async def create_member(body: MembersSchemas.ThingCreate, request: Request, caller: Caller) -> Response:
            """Create a member (echo)."""
            return await _echo(request, caller, 201)

    elif service == "rewards":
        add("/v1/members/{member_id}/points", "GET")
        add("/v1/members/{member_id}/points/ledger", "GET")
        add("/v1/members/{member_id}/snapshot", "GET", "POST")  # a gateway route (test_routing) wins
        add("/v1/rewards", "GET", "POST")
    elif service == "content":
        add("/v1/posts/{post_id}", "GET", "PATCH")
        add("/v1/posts/{post_id}/approve", "POST")

        @router.post("/v1/posts", status_code=201, operation_id="create_post")
        async def create_post(body: ContentSchemas.ThingCreate, request: Request, caller: Caller) -> Response:
            """Create a post (echo)."""
            return await _echo(request, caller, 201)

    elif service == "feedback":
        add("/v1/tickets", "GET")

        @router.get("/v1/tickets/slow", operation_id="slow_ticket")
        async def slow_ticket(caller: Caller) -> dict[str, str]:
            """Answers after SLOW_SECONDS (longer than the gateway waits in these tests)."""
            await asyncio.sleep(SLOW_SECONDS)
            return {"status": "late"}

        @router.get("/v1/tickets/trickle", operation_id="trickle_tickets")
        async def trickle_tickets(caller: Caller) -> StreamingResponse:
            """A streamed answer (no length) whose parts come TRICKLE_PAUSE apart."""

            async def parts() -> AsyncIterator[bytes]:
                for index in range(TRICKLE_PARTS):
                    await asyncio.sleep(TRICKLE_PAUSE)
                    yield f"part {index}\n".encode()

            return StreamingResponse(parts(), media_type="text/plain")

    return router


def echo_service_app(service: str, settings: Settings) -> FastAPI:
    kit_tables = import_module(f"services.{service}.db").kit_tables
    return create_service_app(
        service,  # type: ignore[arg-type]
        settings,
        kit_tables=kit_tables,
        routers=[_echo_router(service)],
        subscriptions={},  # echoes consume nothing
        title=service,
        description=f"The {service} echo service.",
    )


@dataclass
class EdgeGateway:
    gateway: FastAPI
    transport: RoutingTransport
    settings: Settings

    def client(self, identity: Identity | None = None, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport, base_url="http://gateway", headers={**caller_headers(identity), **(headers or {})}
        )


@contextlib.asynccontextmanager
async def edge_gateway(
    *, mount: tuple[str, ...] = DOMAIN_SERVICES, gateway_routes: APIRouter | None = None, **overrides: Any
) -> AsyncIterator[EdgeGateway]:
    """The gateway in front of echo services (those in `mount`; the others are unreachable),
    with `gateway_routes` added to the gateway's own routes."""
    async with fresh_database("gateway", "edge") as gateway_url:
        # The echo services never open their database: they share the gateway's URL.
        settings = test_settings(dict.fromkeys(SERVICES, gateway_url), **overrides)
        transport = RoutingTransport()
        async with contextlib.AsyncExitStack() as stack:
            for service in mount:
                app = echo_service_app(service, settings)
                transport.mount(service, app)
                await stack.enter_async_context(app.router.lifespan_context(app))
            gateway = create_app(settings, transport=transport)
            if gateway_routes is not None:
                gateway.include_router(gateway_routes)
            transport.mount("gateway", gateway)
            gateway.state.identify_caller = header_resolver
            await stack.enter_async_context(gateway.router.lifespan_context(gateway))
            yield EdgeGateway(gateway, transport, settings)
