"""Real processes: members and gateway under uvicorn on Postgres; the gateway is killed
(SIGKILL) in the middle of delivering, restarted, and no webhook is lost."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.common.db import Database
from services.common.events import EventDraft, Outbox, emit_many
from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import Settings
from services.gateway.webhooks.crypto import SecretBox
from services.gateway.webhooks.schemas import WebhookEndpointCreate
from services.gateway.webhooks.service import create_endpoint
from services.members.db import kit_tables as members_kit
from tests.gateway.webhook_support import Receiver, free_port, number_of, numbered_activity
from tests.pg import pg_url

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 200


class Cluster:
    """Members + gateway as uvicorn subprocesses sharing one environment."""

    def __init__(self, workdir: Path) -> None:
        run_id = secrets.token_hex(4)
        self.workdir = workdir
        self.ports = {"gateway": free_port(), "members": free_port()}
        self.env = {
            **os.environ,
            "QUNYUN_ENV": "test",
            "QUNYUN_DATABASE_URL": pg_url(f"qunyun_e2e_{run_id}_{{service}}"),
            "QUNYUN_GATEWAY_URL": f"http://127.0.0.1:{self.ports['gateway']}",
            "QUNYUN_MEMBERS_URL": f"http://127.0.0.1:{self.ports['members']}",
            "QUNYUN_RELAY_INTERVAL_MS": "100",
            "QUNYUN_WEBHOOK_ALLOW_PRIVATE": "true",
            "QUNYUN_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1",
            "QUNYUN_WEBHOOK_TIMEOUT_SECONDS": "2",
            "QUNYUN_WEBHOOK_LEASE_SECONDS": "3",
            "QUNYUN_LOG_LEVEL": "WARNING",
        }
        self.settings = Settings.model_validate(
            {k.removeprefix("QUNYUN_").lower(): v for k, v in self.env.items() if k.startswith("QUNYUN_")}
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    async def migrate(self) -> None:
        for service in ("gateway", "members"):
            url = self.settings.database_url_for(service)  # type: ignore[arg-type]
            await ensure_database(url)
            await upgrade(service, url)

    async def destroy(self) -> None:
        for service in ("gateway", "members"):
            await drop_database(self.settings.database_url_for(service))  # type: ignore[arg-type]

    async def start(self, service: str) -> None:
        log = (self.workdir / f"{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{service}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[service]),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{self.ports[service]}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self.processes[service].poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{service} did not start: {(self.workdir / f'{service}.log').read_text()}")
                await asyncio.sleep(0.1)

    def kill(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="qunyun-e2e-") as tmp:
        yield Path(tmp)


@pytest_asyncio.fixture
async def cluster(workdir: Path) -> AsyncIterator[Cluster]:
    running = Cluster(workdir)
    await running.migrate()
    try:
        yield running
    finally:
        running.stop_all()
        await running.destroy()


async def test_gateway_killed_mid_delivery_loses_nothing(cluster: Cluster) -> None:
    # Slow answers keep deliveries in flight when the gateway dies.
    async with Receiver(lambda _n, _r: (200, {}, 0.05)) as receiver:
        gateway_db = Database(cluster.settings.database_url_for("gateway"), cluster.settings)
        async with gateway_db.session() as session:
            _endpoint, secret = await create_endpoint(
                session,
                WebhookEndpointCreate(url=receiver.url, event_types=["activity.recorded"]),
                SecretBox(cluster.settings),
                cluster.settings,
            )
            await session.commit()
        await gateway_db.dispose()

        await cluster.start("members")
        await cluster.start("gateway")

        outbox = Outbox(members_kit, "members", cluster.settings)
        members_db = Database(cluster.settings.database_url_for("members"), cluster.settings, info={"outbox": outbox})
        event_ids: dict[int, str] = {}
        try:
            for start in range(0, EVENTS, 20):  # in several commits, as real traffic arrives
                async with members_db.session() as session:
                    ids = await emit_many(
                        session,
                        [EventDraft(numbered_activity(n)) for n in range(start, start + 20)],
                    )
                    await session.commit()
                event_ids.update({n: str(i) for n, i in zip(range(start, start + 20), ids, strict=True)})
        finally:
            await members_db.dispose()

        await receiver.wait_for(20, timeout=30)
        cluster.kill("gateway")  # SIGKILL: no shutdown, leases and relay calls cut mid-way
        killed_at = len(receiver.received)
        assert killed_at < EVENTS, "the gateway finished before it was killed; slow the receiver"
        await asyncio.sleep(0.5)
        await cluster.start("gateway")

        deadline = time.monotonic() + 90
        while len(_by_n(receiver.received)) < EVENTS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    by_n = _by_n(receiver.received)
    print(f"killed after {killed_at} receipts; {len(receiver.received)} receipts in all")
    assert set(by_n) == set(range(EVENTS)), f"missing {sorted(set(range(EVENTS)) - set(by_n))[:10]}"
    for n, webhook_ids in by_n.items():
        assert webhook_ids == {f"msg_{event_ids[n].replace('-', '')}"}, (n, webhook_ids)
    for got in receiver.received:
        got.verify(secret)


def _by_n(received: list[Any]) -> dict[int, set[str]]:
    by_n: dict[int, set[str]] = defaultdict(set)
    for got in list(received):
        by_n[number_of(json.loads(got.body))].add(got.webhook_id)
    return by_n
