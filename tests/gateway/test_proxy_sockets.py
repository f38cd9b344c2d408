"""The proxy over real sockets with the production HTTP client (the aiohttp session itself).

The in-process tests (test_routing) run the proxy on an httpx transport; production's
transport is aiohttp, which the proxy drives directly. Here echo services listen on real
127.0.0.1 ports under uvicorn, so that path forwards exactly what the other one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from services.common.settings import SERVICES
from services.gateway.app import create_app
from services.gateway.proxy import Proxy
from tests.gateway.edge_support import caller_headers, echo_service_app, install_header_resolver
from tests.pg import fresh_database
from tests.system import staff
from tests.system import test_settings as settings_for_tests

OPERATOR = staff("operator")


@dataclass
class SocketEdge:
    gateway: FastAPI

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.gateway), base_url="http://gateway", headers=caller_headers(OPERATOR)
        )


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` under uvicorn on a free 127.0.0.1 port, for as long as the block runs."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge() -> AsyncIterator[SocketEdge]:
    async with contextlib.AsyncExitStack() as stack:
        gateway_url = await stack.enter_async_context(fresh_database("gateway", "sockets"))
        base = settings_for_tests(dict.fromkeys(SERVICES, gateway_url))
        urls = {
            f"{service}_url": await stack.enter_async_context(serving(echo_service_app(service, base)))
            for service in ("members", "content", "feedback")
        }
        settings = settings_for_tests(dict.fromkeys(SERVICES, gateway_url), upstream_timeout_seconds=0.5, **urls)
        gateway = create_app(settings)  # the production HTTP client
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        stack.enter_context(install_header_resolver(gateway))
        proxy: Proxy = gateway.state.proxy
        assert proxy.aiohttp is not None  # the direct path is the one under test
        yield SocketEdge(gateway)


async def test_query_body_and_headers_pass_through_the_aiohttp_path(edge: SocketEdge) -> None:
    payload = {"external_id": "wx-1", "display_name": "Li Lei", "note": "中文"}
    async with edge.client() as client:
        response = await client.post(
            "/v1/members?b=2&a=1&tag=x%20y",
            content=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": "k-1", "Authorization": "Bearer secret"},
        )
    assert response.status_code == 201
    echoed = response.json()
    assert echoed["query"] == "b=2&a=1&tag=x%20y"
    assert json.loads(echoed["body"]) == payload
    assert echoed["headers"]["idempotency-key"] == "k-1"
    assert "authorization" not in echoed["headers"]  # credentials stop at the gateway
    assert echoed["caller"]["roles"] == ["operator"]
    assert response.headers["x-request-id"] == echoed["headers"]["x-request-id"]


async def test_statuses_headers_empty_and_large_answers_come_back(edge: SocketEdge) -> None:
    large = "x" * (2 * 1024 * 1024)  # echoed back: more than the proxy reads whole, so it streams
    async with edge.client() as client:
        teapot = await client.patch("/v1/posts/p1?status=418", json={})
        no_body = await client.delete("/v1/members/m1?status=204")
        head = await client.head("/v1/members/m1")
        streamed = await client.post("/v1/members", json={"external_id": "e", "display_name": large})
    assert teapot.status_code == 418
    assert teapot.headers["x-upstream"] == "content"
    assert "keep-alive" not in teapot.headers
    assert no_body.status_code == 204
    assert no_body.content == b""
    assert head.status_code == 405  # forwarded; the echo service declares no HEAD, and says so
    assert head.content == b""
    assert streamed.status_code == 201
    assert json.loads(streamed.json()["body"])["display_name"] == large


async def test_a_slow_service_is_504_over_sockets(edge: SocketEdge) -> None:
    async with edge.client() as client:
        response = await client.get("/v1/tickets/slow")
    assert response.status_code == 504
    assert response.json()["type"] == "https://qunyun.dev/problems/upstream-timeout"


async def test_a_stream_may_outlast_the_upstream_timeout_once_it_has_started(edge: SocketEdge) -> None:
    """The deadline covers the wait for the answer; each read of a stream is bounded, not its length."""
    async with edge.client() as client:
        response = await client.get("/v1/tickets/trickle")
    assert response.status_code == 200
    assert response.text == "".join(f"part {index}\n" for index in range(5))  # 1 s in all, 0.5 s timeout
