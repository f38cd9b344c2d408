"""What the benches share: free ports, temporary Postgres databases, real processes, load
runs, and CPU accounting (ours, the servers', Postgres's backends) so figures taken on a
shared machine still say what each part costs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import Settings
from tests.pg import pg_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def temporary_databases(services: Sequence[str]) -> Iterator[str]:
    """A `QUNYUN_DATABASE_URL` template on fresh, migrated Postgres databases, dropped afterwards."""
    template = pg_url(f"qunyun_bench_{secrets.token_hex(4)}_{{service}}")
    settings = Settings(database_url=template)
    urls = [settings.database_url_for(s) for s in services]  # type: ignore[arg-type]

    async def create() -> None:
        for service, url in zip(services, urls, strict=True):
            await ensure_database(url)
            await upgrade(service, url)

    async def drop() -> None:
        for url in urls:
            with contextlib.suppress(Exception):
                await drop_database(url)

    try:
        asyncio.run(create())
        yield template
    finally:
        asyncio.run(drop())


def asyncpg_dsn(url: str, *, database: str | None = None) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://...`) as asyncpg takes it, optionally on another database."""
    plain = make_url(url).set(drivername="postgresql")
    if database is not None:
        plain = plain.set(database=database)
    return plain.render_as_string(hide_password=False)


def settle_postgres() -> None:
    """CHECKPOINT the bench server: the pages a bench dirtied are written now, not by the
    checkpointer in the middle of the next bench (run_all, between benches). An ingest run
    right after the feedback bench measured twice its usual Postgres CPU per event."""

    async def checkpoint() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(pg_url("postgres")))
        try:
            await connection.execute("CHECKPOINT")
        finally:
            await connection.close()

    asyncio.run(checkpoint())


class PostgresCpu:
    """CPU used by the Postgres backends serving some databases (same machine, /proc).

    A backend's CPU is what the database did for our requests: parsing, planning, index and
    constraint work, WAL. Backends are the pooled connections, so they outlive each run;
    one that appears mid-run counts from its start. Shared background processes (WAL writer,
    checkpointer) are not attributed to anyone.
    """

    def __init__(self, database_urls: Sequence[str]) -> None:
        self.databases = [make_url(u).database for u in database_urls]
        self.dsn = asyncpg_dsn(database_urls[0], database="postgres")
        self._start: dict[int, float] = {}

    def _backends(self) -> list[int]:
        async def query() -> list[int]:
            connection = await asyncpg.connect(self.dsn)
            try:
                rows = await connection.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[])", self.databases
                )
            finally:
                await connection.close()
            return [row["pid"] for row in rows]

        return asyncio.run(query())

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in self._backends()}

    def seconds(self) -> float:
        """CPU seconds since `start`."""
        return sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in self._backends())


@dataclass
class CpuMeter:
    """CPU seconds used by named processes (and Postgres) across one measured run."""

    servers: dict[str, int]
    postgres: PostgresCpu | None = None
    used: dict[str, float] = field(default_factory=dict)
    _start: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        self.used = {}
        if self.postgres is not None:
            self.postgres.start()
        self._start = {name: cpu_seconds(pid) for name, pid in self.servers.items()}
        try:
            yield self.used
        finally:
            for name, pid in self.servers.items():
                self.used[name] = cpu_seconds(pid) - self._start[name]
            if self.postgres is not None:
                self.used["postgres"] = self.postgres.seconds()
            self.used["load_average"] = load_average()


@contextlib.contextmanager
def uvicorn(factory: str, port: int, env: dict[str, str]) -> Iterator[Server]:
    """`uvicorn --factory` in its own process on 127.0.0.1; stopped (by its pid) on exit.

    Its output (the services log every request at INFO, as in production) goes to a file,
    shown if the server fails to start."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    tail = output.read()[-3000:]
                    raise RuntimeError(f"{factory} did not become healthy (exit {process.returncode}):\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            yield Server(base, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load(
    url: str, headers: dict[str, str], *, concurrency: int, seconds: float, processes: int = 1, **extra: Any
) -> dict[str, Any]:
    """Runs the load generator in `processes` separate processes at once (the concurrency
    split between them, so the client is never the bottleneck) and returns their figures
    merged: counts and rates added, percentiles over every latency."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    with tempfile.TemporaryDirectory() as tmp:
        running = []
        for i, share in enumerate(shares):
            command = [sys.executable, "-m", "tests.bench._loadgen", "--url", url]
            command += ["--concurrency", str(share), "--seconds", str(seconds), "--latencies", f"{tmp}/{i}.json"]
            for name, value in headers.items():
                command += ["--header", f"{name}: {value}"]
            for name, value in extra.items():
                command += [f"--{name.replace('_', '-')}", str(value)]
            running.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        results = []
        for process in running:
            output, _ = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"the load generator failed ({process.returncode})")
            results.append(json.loads(output.strip().splitlines()[-1]))
        latencies = sorted(v for i in range(processes) for v in json.loads(Path(f"{tmp}/{i}.json").read_text()))
    merged: dict[str, Any] = {
        key: sum(r[key] for r in results)
        for key in ("requests", "errors", "rps", "accepted", "duplicates", "all_requests", "all_accepted")
    }
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    merged["statuses"] = statuses
    merged["seconds"] = max(r["seconds"] for r in results)
    merged["p50_ms"] = percentile(latencies, 0.50) * 1000
    merged["p99_ms"] = percentile(latencies, 0.99) * 1000
    merged["processes"] = processes
    return merged


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (its latencies and CPU figures come with it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


# The anchor app's figures (bare FastAPI + asyncpg PK SELECT, `_apps.anchor`) from this run's
# gateway_vs_direct: every target line prints them beside its own (run_all runs that bench first).
ANCHOR: dict[str, float] = {}


def anchor_beside() -> str:
    """`(anchor: N req/s, C us CPU/request with Postgres)`: the yardstick every target line carries."""
    if not ANCHOR:
        return "(anchor: not measured in this run; see tests.bench.gateway_vs_direct)"
    return f"(anchor: {ANCHOR['rps']:,.0f} req/s, {ANCHOR['cpu_us']:,.0f} us CPU/request with Postgres)"


@dataclass
class BenchReport:
    """What a bench found: lines for the summary, and whether every target was met."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def add(self, line: str, *, met: bool | None = None) -> None:
        self.lines.append(line)
        if met is False:
            self.ok = False


def run_standalone(run_bench: Callable[[list[str] | None], BenchReport]) -> int:
    """`python -m tests.bench.<name>`: run the bench, print its lines; exit 1 if a target was missed."""
    report = run_bench(None)
    print("\n".join(report.lines))
    return 0 if report.ok else 1
