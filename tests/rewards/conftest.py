"""Fixtures for the rewards tests.

`api(identity)` is the one way tests reach the rewards API: through the gateway, with real
credentials for that caller (`/internal/...` paths go straight to the service).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from services.common.identity import Identity
from tests.system import System

Api = Callable[[Identity], AbstractAsyncContextManager[httpx.AsyncClient]]


def api_for(system: System) -> Api:
    @asynccontextmanager
    async def _client(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
        async with await system.client(identity) as client:
            yield client

    return _client


@pytest.fixture
def api(system: System) -> Api:
    """A client to the rewards API as `identity`."""
    return api_for(system)
