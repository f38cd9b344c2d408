"""Per-caller rate limits: IETF RateLimit fields on every answer, 429 problem with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from services.gateway.ratelimit import InMemoryRateLimitStore, RateDecision
from tests.gateway.edge_support import TEST_CALLER_HEADER, EdgeGateway, edge_gateway, install_header_resolver
from tests.system import System, running_system, staff

# 15 s into a minute window: every answer below says the window resets in 45 s.
NOW = 1_800_000_000.0 - 45


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited_system() -> AsyncIterator[System]:
    async with running_system("postgres", rate_limit="3/minute") as system:
        yield system


@pytest_asyncio.fixture(loop_scope="session")
async def clock(limited_system: System) -> Clock:
    store = limited_system.state("gateway").rate_limits
    store._counters.clear()
    store.clock = Clock(NOW)
    return store.clock  # type: ignore[no-any-return]


async def test_every_answer_carries_the_fields_and_the_fourth_is_429(limited_system: System, clock: Clock) -> None:
    async with limited_system.anonymous() as client:
        answers = [await client.get("/v1/nothing-here") for _ in range(3)]
        refused = await client.get("/v1/nothing-here")
    assert [a.status_code for a in answers] == [404, 404, 404]
    for answer, remaining in zip(answers, (2, 1, 0), strict=True):
        assert answer.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert answer.headers["ratelimit"] == f'"default";r={remaining};t=45'
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://qunyun.dev/problems/rate-limited"
    assert refused.headers["retry-after"] == "45"
    assert refused.headers["ratelimit"] == '"default";r=0;t=45'
    assert refused.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert refused.headers["x-request-id"]


async def test_the_next_window_allows_again(limited_system: System, clock: Clock) -> None:
    async with limited_system.anonymous() as client:
        for _ in range(3):
            await client.get("/v1/nothing-here")
        assert (await client.get("/v1/nothing-here")).status_code == 429
        clock.now += 45
        again = await client.get("/v1/nothing-here")
    assert again.status_code == 404
    assert again.headers["ratelimit"] == '"default";r=2;t=60'


async def test_probes_and_docs_are_exempt(limited_system: System, clock: Clock) -> None:
    async with limited_system.anonymous() as client:
        for _ in range(3):
            await client.get("/v1/nothing-here")
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "ratelimit" not in response.headers, path


async def test_callers_are_counted_apart(limited_system: System, clock: Clock) -> None:
    gateway = limited_system.apps["gateway"]
    alice, bob = staff("operator"), staff("operator")
    with install_header_resolver(gateway):
        async with limited_system.anonymous() as client:
            for _ in range(3):
                await client.get("/v1/nothing-here", headers={TEST_CALLER_HEADER: alice.model_dump_json()})
            alice_refused = await client.get("/v1/nothing-here", headers={TEST_CALLER_HEADER: alice.model_dump_json()})
            bob_allowed = await client.get("/v1/nothing-here", headers={TEST_CALLER_HEADER: bob.model_dump_json()})
            anonymous = await client.get("/v1/nothing-here")
            bad = await client.get("/v1/nothing-here", headers={TEST_CALLER_HEADER: "bad"})
    assert alice_refused.status_code == 429
    assert bob_allowed.status_code == 404
    assert bob_allowed.headers["ratelimit"] == '"default";r=2;t=45'
    assert anonymous.headers["ratelimit"] == '"default";r=2;t=45'
    assert bad.headers["ratelimit"] == '"default";r=1;t=45'  # bad credentials count by address


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited_edge() -> AsyncIterator[EdgeGateway]:
    async with edge_gateway(rate_limit="2/minute") as running:
        running.gateway.state.rate_limits.clock = Clock(NOW)
        yield running


async def test_proxied_answers_and_their_errors_carry_the_fields(limited_edge: EdgeGateway) -> None:
    limited_edge.gateway.state.rate_limits._counters.clear()
    caller = staff("operator")
    async with limited_edge.client(caller) as client:
        ok = await client.get("/v1/members/abc")
        upstream_error = await client.get("/v1/members/abc?status=409")
        refused = await client.get("/v1/members/abc")
    assert ok.status_code == 200
    assert ok.headers["ratelimit"] == '"default";r=1;t=45'
    assert upstream_error.status_code == 409
    assert upstream_error.headers["ratelimit"] == '"default";r=0;t=45'
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "45"


async def test_store_counts_per_key_per_window() -> None:
    clock = Clock(120.0)
    store = InMemoryRateLimitStore(clock=clock)
    assert await store.hit("a", 2, 60) == RateDecision(True, 1, 60)
    clock.now = 150.5
    assert await store.hit("a", 2, 60) == RateDecision(True, 0, 30)
    assert await store.hit("a", 2, 60) == RateDecision(False, 0, 30)
    assert await store.hit("b", 2, 60) == RateDecision(True, 1, 30)
    clock.now = 180.0
    assert await store.hit("a", 2, 60) == RateDecision(True, 1, 60)


async def test_store_memory_is_bounded() -> None:
    clock = Clock(0.0)
    store = InMemoryRateLimitStore(max_keys=100, clock=clock)
    for i in range(1000):
        await store.hit(f"caller-{i}", 5, 60)
        assert len(store) <= 100
    # the most recent callers are still counted
    assert (await store.hit("caller-999", 5, 60)).remaining == 3
