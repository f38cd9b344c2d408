"""Clients and factories for the members tests.

Every test reaches the service through `api(identity)`. Today that is a client straight
to the members service with an internal token; once the gateway routes `/v1`, switching
the one line in `api` runs the whole suite through the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from services.common.identity import Identity
from tests.system import System

ApiFactory = Callable[[Identity], Awaitable[httpx.AsyncClient]]


@pytest.fixture
def api(system: System) -> ApiFactory:
    """`async with await api(identity) as client:` a client acting as that caller."""

    async def client_for(identity: Identity) -> httpx.AsyncClient:
        return system.direct("members", identity)

    return client_for


@pytest.fixture
def pg_api(pg_system: System) -> ApiFactory:
    """Like `api`, on Postgres only (concurrency tests)."""

    async def client_for(identity: Identity) -> httpx.AsyncClient:
        return pg_system.direct("members", identity)

    return client_for
