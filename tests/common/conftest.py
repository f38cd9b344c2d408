"""Fixtures for the kit's own tests: a kit-built app and two consumers on fresh databases.

The databases are cloned once per worker from the run's feedback template (which holds the
kit tables, as every service migrates them), and emptied per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.common.kit import KitDatabases, KitSystem, kit_system


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kit_dbs() -> AsyncIterator[KitDatabases]:
    """The kit databases (build a system with custom settings from them)."""
    dbs = await KitDatabases.create()
    try:
        yield dbs
    finally:
        await dbs.drop()


@pytest_asyncio.fixture
async def kit(kit_dbs: KitDatabases) -> AsyncIterator[KitSystem]:
    async with kit_system(kit_dbs) as system:
        yield system
