"""The gateway routes `/v1` by path template to the owning service and forwards faithfully."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter

from services.common.identity import verify_internal_token
from services.common.settings import SERVICES
from services.gateway.app import create_app
from services.gateway.routing import Route, RouteTable
from tests.gateway.edge_support import (
    TEST_CALLER_HEADER,
    EdgeGateway,
    caller_headers,
    echo_service_app,
    edge_gateway,
    install_header_resolver,
)
from tests.pg import fresh_database
from tests.system import member, partner, staff
from tests.system import test_settings as settings_for_tests

OPERATOR = staff("operator")


def gateway_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/members/{member_id}/snapshot")
    async def read_snapshot(member_id: str) -> dict[str, str]:
        """A gateway-composed view (stand-in) on a template a service also declares."""
        return {"service": "gateway", "member_id": member_id}

    return router


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge() -> AsyncIterator[EdgeGateway]:
    async with edge_gateway(upstream_timeout_seconds=0.5, gateway_routes=gateway_routes()) as running:
        yield running


# -- the route table on its own --------------------------------------------------------------


def test_literal_segments_beat_parameters_wherever_they_differ() -> None:
    table = RouteTable(
        [
            Route("members", "/v1/members/{id}", frozenset({"GET"})),
            Route("members", "/v1/members/{id}/{part}", frozenset({"GET"})),
            Route("members", "/v1/members/by-external-id/{x}", frozenset({"PUT", "GET"})),
            Route("rewards", "/v1/members/{id}/points", frozenset({"GET"})),
            Route("content", "/v1/{anything}/{id}/points", frozenset({"GET"})),
        ]
    )
    assert table.match("GET", "/v1/members/by-external-id/abc").route.template == "/v1/members/by-external-id/{x}"  # type: ignore[union-attr]
    assert table.match("GET", "/v1/members/42/points").route.service == "rewards"  # type: ignore[union-attr]
    assert table.match("GET", "/v1/members/42/profile").route.template == "/v1/members/{id}/{part}"  # type: ignore[union-attr]
    assert table.match("GET", "/v1/members/42").route.service == "members"  # type: ignore[union-attr]
    assert table.match("GET", "/v1/posts/42/points").route.service == "content"  # type: ignore[union-attr]


def test_a_less_specific_template_answers_when_the_specific_one_lacks_the_method() -> None:
    table = RouteTable(
        [
            Route("members", "/v1/members/{id}/{part}", frozenset({"DELETE"})),
            Route("rewards", "/v1/members/{id}/points", frozenset({"GET"})),
        ]
    )
    assert table.match("DELETE", "/v1/members/1/points").route.service == "members"  # type: ignore[union-attr]
    miss = table.match("POST", "/v1/members/1/points")
    assert miss.route is None
    assert miss.allowed == {"GET", "DELETE"}


def test_unknown_and_malformed_paths_do_not_match() -> None:
    table = RouteTable([Route("members", "/v1/members/{id}", frozenset({"GET"}))])
    for path in ("/v1/members", "/v1/members/1/2", "/v1/members//", "/v1/other/1", "/v1/members/"):
        match = table.match("GET", path)
        assert match.route is None, path
        assert match.allowed == frozenset(), path


def test_table_takes_only_v1_paths_from_service_documents() -> None:
    table = RouteTable.from_documents(
        {
            "members": {
                "paths": {"/v1/members": {"get": {}, "post": {}, "parameters": []}, "/internal/x": {"get": {}}}
            },
            "rewards": {"paths": {"/healthz": {"get": {}}}},
        }
    )
    assert [(r.service, r.template, sorted(r.methods)) for r in table.routes] == [
        ("members", "/v1/members", ["GET", "POST"])
    ]


# -- through the gateway ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("GET", "/v1/members/abc", "members"),
        ("GET", "/v1/members/abc/points", "rewards"),
        ("GET", "/v1/members/abc/points/ledger", "rewards"),
        ("PUT", "/v1/members/by-external-id/wx-1", "members"),
        ("GET", "/v1/members/by-external-id", "members"),  # {member_id} = "by-external-id"
        ("DELETE", "/v1/communities/c1/members/m1", "members"),
        ("POST", "/v1/posts/p1/approve", "content"),
        ("GET", "/v1/rewards", "rewards"),
        ("GET", "/v1/tickets", "feedback"),
    ],
)
async def test_requests_reach_the_service_owning_the_template(
    edge: EdgeGateway, method: str, path: str, service: str
) -> None:
    async with edge.client(OPERATOR) as client:
        response = await client.request(method, path)
    assert response.status_code == 200, response.text
    assert response.json()["service"] == service
    assert response.json()["path"] == path


async def test_gateway_routes_win_over_proxied_ones(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        own = await client.get("/v1/members/abc/snapshot")
        other_method = await client.post("/v1/members/abc/snapshot")
        beside = await client.get("/v1/members/abc/points")
    assert own.json() == {"service": "gateway", "member_id": "abc"}
    # a path the gateway serves is the gateway's, whatever the method
    assert other_method.status_code == 405
    assert other_method.headers["allow"] == "GET"
    assert beside.json()["service"] == "rewards"


async def test_proxied_routes_need_a_caller(edge: EdgeGateway) -> None:
    async with edge.client() as client:
        response = await client.get("/v1/members/abc")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"] == "https://qunyun.dev/problems/unauthorized"


async def test_bad_credentials_are_401_even_on_known_routes(edge: EdgeGateway) -> None:
    async with edge.client(headers={TEST_CALLER_HEADER: "bad"}) as client:
        response = await client.get("/v1/members/abc")
    assert response.status_code == 401
    assert response.json()["detail"] == "The test credentials are invalid."


async def test_unknown_path_is_404_and_wrong_method_is_405_with_allow(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        unknown = await client.get("/v1/nothing/here")
        wrong = await client.post("/v1/members/abc")
        outside = await client.get("/internal/members/resolve")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, PATCH"
    assert wrong.json()["type"] == "https://qunyun.dev/problems/method-not-allowed"
    assert outside.status_code == 404  # internal routes are never reachable from outside


async def test_caller_identity_travels_in_the_internal_token_and_credentials_do_not(edge: EdgeGateway) -> None:
    caller = partner("members:write", id="key-1")
    async with edge.client(caller) as client:
        response = await client.get(
            "/v1/members/abc",
            headers={"Authorization": "Bearer secret", "X-API-Key": "qy_secret", "Cookie": "session=1"},
        )
    echoed = response.json()
    assert echoed["caller"] == {
        "kind": "partner",
        "id": "key-1",
        "roles": [],
        "scopes": ["members:write"],
        "member_id": None,
    }
    forwarded = {name.lower() for name in echoed["headers"]}
    assert not forwarded & {"authorization", "x-api-key", "cookie", TEST_CALLER_HEADER.lower()}
    token_identity = verify_internal_token(echoed["headers"]["x-internal-token"], edge.settings)
    assert token_identity.key == caller.key


async def test_member_identity_is_forwarded(edge: EdgeGateway) -> None:
    member_id = uuid.uuid4()
    async with edge.client(member(member_id)) as client:
        response = await client.get(f"/v1/members/{member_id}/points")
    assert response.json()["caller"]["member_id"] == str(member_id)


async def test_query_body_and_safe_headers_pass_through(edge: EdgeGateway) -> None:
    payload = {"external_id": "wx-1", "display_name": "Li Lei", "note": "中文"}
    async with edge.client(OPERATOR) as client:
        response = await client.post(
            "/v1/members?b=2&a=1&tag=x%20y",
            content=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": "k-1", "If-Match": '"v3"'},
        )
    assert response.status_code == 201
    echoed = response.json()
    assert echoed["query"] == "b=2&a=1&tag=x%20y"
    assert json.loads(echoed["body"]) == payload
    assert echoed["headers"]["idempotency-key"] == "k-1"
    assert echoed["headers"]["if-match"] == '"v3"'
    assert echoed["headers"]["content-type"] == "application/json"


async def test_upstream_status_headers_and_errors_come_back(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        teapot = await client.patch("/v1/posts/p1?status=418", json={})
        invalid = await client.post("/v1/posts", json={"title": 1})
        no_body = await client.delete("/v1/members/m1?status=204")
    assert teapot.status_code == 418
    assert teapot.headers["x-upstream"] == "content"
    assert teapot.headers["cache-control"] == "no-store"
    assert "keep-alive" not in teapot.headers  # hop-by-hop headers stop at the gateway
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert {tuple(e["loc"]) for e in invalid.json()["errors"]} == {("body", "title"), ("body", "body")}
    assert no_body.status_code == 204
    assert no_body.content == b""


async def test_request_id_round_trips(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        given = await client.get("/v1/tickets", headers={"X-Request-ID": "req-42.a"})
        made = await client.get("/v1/tickets")
    assert given.headers["x-request-id"] == "req-42.a"
    assert given.json()["headers"]["x-request-id"] == "req-42.a"
    assert made.json()["headers"]["x-request-id"] == made.headers["x-request-id"]
    assert given.headers.get_list("x-request-id") == ["req-42.a"]


async def test_body_over_the_cap_is_413_and_never_forwarded(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        response = await client.post("/v1/rewards", content=b"x" * (5 * 1024 * 1024 + 1))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(6):
                yield b"y" * (1024 * 1024)

        streamed = await client.post("/v1/rewards", content=chunks())
    assert response.status_code == 413
    assert response.json()["type"] == "https://qunyun.dev/problems/payload-too-large"
    assert streamed.status_code == 413


async def test_slow_upstream_is_504_not_a_hang(edge: EdgeGateway) -> None:
    async with edge.client(OPERATOR) as client:
        started = asyncio.get_running_loop().time()
        response = await client.get("/v1/tickets/slow")
        elapsed = asyncio.get_running_loop().time() - started
    assert response.status_code == 504
    assert response.json()["type"] == "https://qunyun.dev/problems/upstream-timeout"
    assert elapsed < 2.0


async def test_service_down_is_503(edge: EdgeGateway) -> None:
    members = edge.transport.apps.pop("members")
    try:
        async with edge.client(OPERATOR) as client:
            down = await client.get("/v1/members/abc")
            other = await client.get("/v1/members/abc/points")
    finally:
        edge.transport.apps["members"] = members
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.headers["retry-after"] == "5"
    assert "members" in down.json()["detail"]
    assert other.status_code == 200  # the rewards service is unaffected


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_service_never_reached_is_503_not_404() -> None:
    async with edge_gateway(mount=("rewards",)) as running, running.client(OPERATOR) as client:
        unknown = await client.get("/v1/members/abc")
        known = await client.get("/v1/members/abc/points")
    # members' document never arrived, so its paths are unknown: say so rather than 404
    assert unknown.status_code == 503
    assert "members" in unknown.json()["detail"]
    assert known.status_code == 200


async def test_service_on_an_unused_port_is_503_over_real_sockets() -> None:
    port = unused_port()
    async with contextlib.AsyncExitStack() as stack:
        gateway_url = await stack.enter_async_context(fresh_database("gateway", "routing"))
        settings = settings_for_tests(dict.fromkeys(SERVICES, gateway_url), members_url=f"http://127.0.0.1:{port}")
        gateway = create_app(settings)  # the production HTTP client, real sockets
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        install = install_header_resolver(gateway)
        loader = gateway.state.routes
        # a route learned while members was up; now nothing listens on its port
        loader.table = RouteTable([Route("members", "/v1/members/{id}", frozenset({"GET"}))])
        with install:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gateway", headers=caller_headers(OPERATOR)
            ) as client:
                response = await client.get("/v1/members/abc")
    assert response.status_code == 503
    assert response.json()["type"] == "https://qunyun.dev/problems/service-unavailable"


async def test_a_service_that_comes_up_later_is_routed_without_restart() -> None:
    async with edge_gateway(mount=("rewards", "content", "feedback")) as running:
        async with running.client(OPERATOR) as client:
            before = await client.get("/v1/members/abc")
            assert before.status_code == 503
            late = echo_service_app("members", running.settings)
            async with late.router.lifespan_context(late):
                running.transport.mount("members", late)
                running.gateway.state.routes._next_refresh_at = 0.0  # the refresh interval has passed
                after = await client.get("/v1/members/abc")
    assert after.status_code == 200
    assert after.json()["service"] == "members"


async def test_unknown_paths_refresh_the_table_at_most_once_per_interval(edge: EdgeGateway) -> None:
    loader = edge.gateway.state.routes
    loader._next_refresh_at = 0.0
    fetched = 0
    original = loader._fetch

    async def counting_fetch(service: str):  # type: ignore[no-untyped-def]
        nonlocal fetched
        fetched += 1
        return await original(service)

    loader._fetch = counting_fetch
    try:
        async with edge.client(OPERATOR) as client:
            answers = await asyncio.gather(*(client.get(f"/v1/unknown/{i}") for i in range(20)))
    finally:
        del loader._fetch
    assert {a.status_code for a in answers} == {404}
    assert fetched == len(loader.services)  # one refresh for twenty concurrent misses
