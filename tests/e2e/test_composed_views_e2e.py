"""Composed views with real processes: a service frozen with SIGSTOP (its socket still accepts
connections, nothing answers) is left out of the overview and the dashboard within the part
budget, and is back once thawed.

Lean on purpose: five `qunyun serve` processes (tests.e2e.cluster) on databases cloned from
the run's migrated templates, so nothing is migrated and no server is started here.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from services.common.settings import ServiceName
from tests.e2e.cluster import ADMIN_EMAIL, ADMIN_PASSWORD, Cluster
from tests.pg import drop_databases
from tests.system import clone_databases

pytestmark = pytest.mark.e2e

ANSWER_WITHIN_SECONDS = 1.5
FROZEN: ServiceName = "rewards"


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    settings = {
        "QUNYUN_DASHBOARD_CACHE_SECONDS": "0",  # every dashboard below is read afresh
        "QUNYUN_DB_POOL_SIZE": "2",
        "QUNYUN_DB_MAX_OVERFLOW": "4",
    }
    running = Cluster(tmp_path, settings=settings)
    urls = await clone_databases("compose_e2e")
    running.databases.update(urls)
    try:
        await running.start(timeout=60)
        yield running
    finally:
        running.stop()
        await drop_databases([make_url(url).database or "" for url in urls.values()])


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def timed_get(client: httpx.AsyncClient, path: str, **params: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get(path, params=params)
    return response, time.perf_counter() - started


async def test_a_frozen_service_is_degraded_not_waited_for(cluster: Cluster) -> None:
    (gateway,) = cluster.public_urls()
    async with httpx.AsyncClient(base_url=gateway, timeout=10, trust_env=False) as admin:
        token = ok(await admin.post("/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        admin.headers["Authorization"] = f"Bearer {token['access_token']}"
        community = ok(await admin.post("/v1/communities", json={"name": "Tea"}), 201)["id"]
        member = ok(await admin.post("/v1/members", json={"external_id": "wx-1", "display_name": "Lin"}), 201)["id"]
        overview_path = f"/v1/members/{member}/overview"
        # Warm: every part answers, nothing is degraded.
        assert ok(await admin.get(overview_path))["degraded"] == []
        assert ok(await admin.get("/v1/dashboard", params={"community_id": community}))["degraded"] == []

        frozen = cluster.replicas[FROZEN][0]
        frozen.signal_group(signal.SIGSTOP)
        try:
            overview, overview_seconds = await timed_get(admin, overview_path)
            dashboard, dashboard_seconds = await timed_get(admin, "/v1/dashboard", community_id=community)
        finally:
            frozen.signal_group(signal.SIGCONT)

        assert ok(overview)["degraded"] == [FROZEN]
        assert overview.json()["member"]["id"] == member
        assert overview.json()["points"] is None
        assert overview_seconds < ANSWER_WITHIN_SECONDS, overview_seconds
        assert ok(dashboard)["degraded"] == [FROZEN]
        assert dashboard.json()["points"] is None
        assert dashboard.json()["engagement"] is not None
        assert dashboard_seconds < ANSWER_WITHIN_SECONDS, dashboard_seconds

        # Thawed, it is back in the next answers.
        assert ok(await admin.get(overview_path))["degraded"] == []
        assert ok(await admin.get("/v1/dashboard", params={"community_id": community}))["degraded"] == []
