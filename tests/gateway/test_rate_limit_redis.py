"""Shared rate limits: with QUNYUN_REDIS_URL, gateway replicas count each caller once, together.

Runs against the machine's Redis (`QUNYUN_TEST_REDIS`, default redis://127.0.0.1:6379/0);
if none answers the tests fail, never skip: shared limits are a feature, not an option. Every
test uses a key prefix of its own, so parallel workers and tests never share counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI

from services.common.settings import DOMAIN_SERVICES, SERVICES
from services.gateway.app import create_app
from services.gateway.ratelimit import InMemoryRateLimitStore, RedisRateLimitStore
from tests import system as system_support
from tests.gateway.edge_support import echo_service_app
from tests.gateway.test_rate_limit import NOW, Clock
from tests.pg import fresh_database

REDIS_ENV = "QUNYUN_TEST_REDIS"
REDIS_URL = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")
# Nothing listens on port 1 of the loopback: connections are refused at once.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


async def _redis_answers() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        await client.aclose()


@pytest.fixture
async def redis_url() -> str:
    if not await _redis_answers():
        pytest.fail(f"no Redis answers at {REDIS_URL}: start the machine's Redis or set {REDIS_ENV}")
    return REDIS_URL


def unique_prefix() -> str:
    return f"qunyun-test:{secrets.token_hex(6)}:"


@contextlib.asynccontextmanager
async def gateway_replicas(count: int, **overrides: Any) -> AsyncIterator[list[FastAPI]]:
    """`count` gateway apps built from the same settings (each with its own rate-limit store)
    on one gateway database, as replicas behind a load balancer would be."""
    async with fresh_database("gateway", "replicas") as gateway_url:
        # The echo services never open their database: they share the gateway's URL.
        settings = system_support.test_settings(dict.fromkeys(SERVICES, gateway_url), **overrides)
        transport = system_support.RoutingTransport()
        async with contextlib.AsyncExitStack() as stack:
            for service in DOMAIN_SERVICES:  # echo services: unknown paths are 404
                upstream = echo_service_app(service, settings)
                transport.mount(service, upstream)
                await stack.enter_async_context(upstream.router.lifespan_context(upstream))
            apps = []
            for _ in range(count):
                app = create_app(settings, transport=transport)
                await stack.enter_async_context(app.router.lifespan_context(app))
                store = app.state.rate_limits
                store.clock = store.fallback.clock = Clock(NOW)
                apps.append(app)
            yield apps


def parse_ratelimit(field: str) -> tuple[int, int]:
    """`"default";r=2;t=45` -> (2, 45)."""
    params = dict(part.split("=") for part in field.split(";")[1:])
    return int(params["r"]), int(params["t"])


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_two_replicas_allow_the_limit_once_not_twice(redis_url: str) -> None:
    prefix = unique_prefix()
    async with gateway_replicas(2, rate_limit="3/minute", redis_url=redis_url, redis_key_prefix=prefix) as apps:
        assert all(isinstance(app.state.rate_limits, RedisRateLimitStore) for app in apps)
        assert apps[0].state.rate_limits is not apps[1].state.rate_limits
        answers = []
        async with client_of(apps[0]) as first, client_of(apps[1]) as second:
            for client in (first, second, first, second, first, second):
                answers.append(await client.get("/v1/nothing-here"))
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429, 429]
    # The window's key was made to expire with the window (45 s left on the test clock); the
    # TTL then runs down on Redis's clock, so a slow run may see a second less.
    fields = [parse_ratelimit(a.headers["ratelimit"]) for a in answers]
    assert fields[0] == (2, 45)
    assert [remaining for remaining, _ in fields] == [2, 1, 0, 0, 0, 0]
    assert all(40 <= reset <= 45 for _, reset in fields)
    for refused, (_, reset) in zip(answers[3:], fields[3:], strict=True):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "https://qunyun.dev/problems/rate-limited"
        assert refused.headers["retry-after"] == str(reset)
        assert refused.headers["ratelimit-policy"] == '"default";q=3;w=60'
    shared = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in shared.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 1  # one window key for the one caller, expiring with its window
        assert 0 < await shared.pttl(keys[0]) <= 45_000
        await shared.delete(*keys)
    finally:
        await shared.aclose()


async def test_concurrent_hits_on_two_stores_are_counted_exactly(redis_url: str) -> None:
    stores = [RedisRateLimitStore.from_url(redis_url, prefix=unique_prefix()) for _ in range(2)]
    stores[1].prefix = stores[0].prefix
    try:
        decisions = await asyncio.gather(*(stores[i % 2].hit("caller", 10, 60) for i in range(25)))
    finally:
        for store in stores:
            await store.aclose()
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))


async def test_a_forgotten_script_is_loaded_again(redis_url: str) -> None:
    store = RedisRateLimitStore.from_url(redis_url, prefix=unique_prefix(), clock=Clock(120.0))
    try:
        decisions = [await store.hit("a", 2, 60)]
        store._script.sha = "0" * 40  # as if the server restarted and forgot it: NOSCRIPT
        decisions += [await store.hit("a", 2, 60), await store.hit("a", 2, 60)]
    finally:
        await store.aclose()
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 1), (True, 0), (False, 0)]
    assert all(55 <= d.reset_seconds <= 60 for d in decisions)  # Redis's clock runs the TTL down
    assert store._skip_until == 0.0  # all counted in Redis: the local fallback never stepped in


async def test_unreachable_redis_fails_open_to_local_counting() -> None:
    async with gateway_replicas(1, rate_limit="2/minute", redis_url=DEAD_REDIS_URL) as (app,):
        store: RedisRateLimitStore = app.state.rate_limits
        assert isinstance(store.fallback, InMemoryRateLimitStore)
        async with client_of(app) as client:
            answers = [await client.get("/v1/nothing-here") for _ in range(3)]
            metrics = (await client.get("/metrics")).text
    # Served, and still limited per replica by the in-process counters.
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[0].headers["ratelimit"] == '"default";r=1;t=45'
    # One failed attempt; later hits count locally without waiting on Redis again for a while.
    assert "qunyun_gateway_ratelimit_store_errors_total 1.0" in metrics


async def test_redis_is_tried_again_after_the_pause(redis_url: str) -> None:
    store = RedisRateLimitStore.from_url(DEAD_REDIS_URL, prefix=unique_prefix(), clock=Clock(120.0), retry_seconds=0)
    healthy = RedisRateLimitStore.from_url(redis_url, prefix=store.prefix)
    try:
        assert (await store.hit("a", 5, 60)).remaining == 4  # local
        store.client, store._script = healthy.client, healthy._script
        assert (await store.hit("a", 5, 60)).remaining == 4  # Redis again: its own count starts at 1
    finally:
        await healthy.aclose()
        await store.aclose()
