"""Clients and factories for the members tests.

Every test reaches the service through `api(identity)`: a client to the gateway,
authenticated as that caller with real credentials (JWT or API key), so the whole suite
runs through authentication, routing and the internal token. `/internal/...` paths are
not public: tests of those use `system.direct`.
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
        return await system.client(identity)

    return client_for


@pytest.fixture
def internal_api(system: System) -> ApiFactory:
    """A client straight to the members service with an internal token (`/internal/...`)."""

    async def client_for(identity: Identity) -> httpx.AsyncClient:
        return system.direct("members", identity)

    return client_for
