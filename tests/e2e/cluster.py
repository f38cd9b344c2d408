"""Real processes with replicas: each service as N `qunyun serve` processes on one database.

    cluster = Cluster(workdir, replicas={"members": 2, "rewards": 2, "gateway": 2})
    await cluster.create_databases()
    try:
        await cluster.start()
        cluster.kill(cluster.replicas["members"][1])   # SIGKILL, no goodbye
    finally:
        cluster.stop()
        await cluster.drop_databases()

Every service gets one migrated database on an embedded PostgreSQL server of the
cluster's own (under `workdir`), shared by its replicas. A service with more than one replica
(the gateway included) sits behind a `tests.e2e.balancer` process: every process reaches
it through that balancer (`QUNYUN_<SERVICE>_URL`), round-robin, failing over when a
replica refuses connections. Clients of the public API talk to each gateway replica
directly (`cluster.public_urls()`); the gateway balancer carries the relays' events.

Each process runs in its own process group with its output in `workdir/<name>.log`;
`kill` and `stop` signal those groups, never anything by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.common.embedded_postgres import EmbeddedPostgres
from services.common.migrations import ensure_database, upgrade
from services.common.settings import SERVICES, ServiceName
from tests.e2e.runner import free_port_base

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@chaos.test"
ADMIN_PASSWORD = "chaos-admin-password-1"
# Public paths of the services under test: anonymous, a gateway that routes them answers 401.
ROUTE_PROBES = ("/v1/members", "/v1/events/batch", "/v1/rewards", "/v1/redemptions")


def free_port() -> int:
    """A free port in this worker's slice, below the ephemeral range (see `runner.port_slice`)."""
    return free_port_base(1)


@dataclass
class Proc:
    """One process of the cluster: a service replica or a balancer."""

    name: str
    port: int
    log_path: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as log:
            # Popen from the main thread: a child asking for PDEATHSIG gets it when the
            # forking *thread* ends. Its own session: signals reach its whole group.
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)  # its pid is its group's id (start_new_session)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    """Service replicas behind balancers, on one Postgres database per service."""

    workdir: Path
    replicas_per_service: Mapping[ServiceName, int] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)
    databases: dict[ServiceName, str] = field(default_factory=dict)  # service -> database URL
    replicas: dict[ServiceName, list[Proc]] = field(default_factory=dict)
    balancers: dict[ServiceName, Proc] = field(default_factory=dict)
    _server: EmbeddedPostgres | None = None

    def __post_init__(self) -> None:
        for service in SERVICES:
            count = self.replicas_per_service.get(service, 1)
            self.replicas[service] = [
                Proc(
                    name=f"{service}-{n}",
                    port=(port := free_port()),
                    log_path=self.workdir / f"{service}-{n}.log",
                    argv=[
                        sys.executable,
                        "-m",
                        "services.cli",
                        "serve",
                        service,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                )
                for n in range(1, count + 1)
            ]
            if count > 1:
                port = free_port()
                self.balancers[service] = Proc(
                    name=f"{service}-balancer",
                    port=port,
                    log_path=self.workdir / f"{service}-balancer.log",
                    argv=[
                        sys.executable,
                        "-m",
                        "tests.e2e.balancer",
                        "--port",
                        str(port),
                        "--parent-pid",
                        str(os.getpid()),
                        *(replica.url for replica in self.replicas[service]),
                    ],
                )

    # --- databases -----------------------------------------------------------------------

    async def create_databases(self) -> None:
        """One migrated database per service, on a PostgreSQL server of the cluster's own: its
        eight processes need dozens of connections, which the run's shared server (and the
        tests running beside this one) should not have to spare."""
        self._server = EmbeddedPostgres(self.workdir / "postgres")
        await asyncio.to_thread(self._server.start)
        for service in SERVICES:
            url = self._server.database_url(f"qunyun_{service}")
            await ensure_database(url)
            await upgrade(service, url)
            self.databases[service] = url

    async def drop_databases(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None

    # --- processes -----------------------------------------------------------------------

    def service_url(self, service: ServiceName) -> str:
        """Where the processes reach `service`: its balancer, or its one replica."""
        balancer = self.balancers.get(service)
        return balancer.url if balancer is not None else self.replicas[service][0].url

    def public_urls(self) -> list[str]:
        """Each gateway replica's own URL (clients pick one)."""
        return [replica.url for replica in self.replicas["gateway"]]

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUNYUN_")}
        env.update(
            {
                "QUNYUN_ENV": "development",
                "QUNYUN_DATA_DIR": str(self.workdir / "var"),
                "QUNYUN_ADMIN_EMAIL": ADMIN_EMAIL,
                "QUNYUN_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "QUNYUN_WEBHOOK_ALLOW_PRIVATE": "true",
                "QUNYUN_RATE_LIMIT": "10000000/minute",
                "QUNYUN_LOG_LEVEL": "WARNING",
                # `serve` asks for SIGTERM when this process dies (see services.supervisor).
                "QUNYUN_SUPERVISOR_PID": str(os.getpid()),
            }
        )
        for service in SERVICES:
            env[f"QUNYUN_{service.upper()}_DATABASE_URL"] = self.databases[service]
            env[f"QUNYUN_{service.upper()}_URL"] = self.service_url(service)
        env.update(self.settings)
        return env

    async def start(self, timeout: float = 90) -> None:
        """Every process at once (the gateways create the same bootstrap admin safely), then
        wait until each answers `/readyz` and each gateway routes to every service."""
        env = self.env()
        for proc in self.all_procs():
            proc.start(env)
        await self.wait_ready(list(self.balancers.values()), timeout, path="/_balancer/stats", any_answer=True)
        await self.wait_ready([r for service in SERVICES for r in self.replicas[service]], timeout)
        await self.wait_routes(timeout)

    async def wait_routes(self, timeout: float) -> None:
        """Until every gateway knows every service's routes: a gateway that started before a
        service answered loads that service's part of its route table again on demand."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            for gateway in self.replicas["gateway"]:
                for path in ROUTE_PROBES:
                    while (await client.get(gateway.url + path)).status_code in (404, 503):
                        if time.monotonic() > deadline:
                            raise AssertionError(f"{gateway.name} does not route {path}:\n{self.logs()}")
                        await asyncio.sleep(0.2)

    async def wait_ready(
        self, procs: list[Proc], timeout: float, *, path: str = "/readyz", any_answer: bool = False
    ) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(procs)
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while waiting:
                for proc in list(waiting):
                    if not proc.alive:
                        raise AssertionError(f"{proc.name} exited while starting:\n{proc.log_tail()}")
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await client.get(proc.url + path)
                        if any_answer or answer.status_code == 200:
                            waiting.remove(proc)
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(p.name for p in waiting)
                    raise AssertionError(f"not ready within {timeout} s: {names}\n{self.logs()}")
                if waiting:
                    await asyncio.sleep(0.1)

    def kill(self, proc: Proc, signum: int = signal.SIGKILL) -> None:
        """Signal the process's group (SIGKILL: no shutdown, no goodbye) and reap it."""
        proc.signal_group(signum)
        if proc.process is not None:
            proc.process.wait(timeout=10)

    def all_procs(self) -> list[Proc]:
        return [*(r for service in SERVICES for r in self.replicas[service]), *self.balancers.values()]

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every process group still running, SIGKILL those that outlive `timeout`."""
        running = [proc for proc in self.all_procs() if proc.alive]
        for proc in running:
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            assert proc.process is not None
            try:
                proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.signal_group(signal.SIGKILL)
                proc.process.wait(timeout=10)

    async def balancer_stats(self) -> dict[str, dict[str, int]]:
        """Each balancer's figures (see `tests.e2e.balancer`), by service."""
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            return {
                service: (await client.get(balancer.url + "/_balancer/stats")).json()
                for service, balancer in self.balancers.items()
            }

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {proc.name} ({proc.log_path})\n{proc.log_tail(lines)}" for proc in self.all_procs())
