"""What the benches share: free ports, temporary Postgres databases, real processes, load runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import Settings

PG_SERVER = os.environ.get("QUNYUN_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_databases(services: Sequence[str]) -> Iterator[str]:
    """A `QUNYUN_DATABASE_URL` template on fresh, migrated Postgres databases, dropped afterwards."""
    template = f"{PG_SERVER}/qunyun_bench_{secrets.token_hex(4)}_{{service}}"
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


@contextlib.contextmanager
def uvicorn(factory: str, port: int, env: dict[str, str]) -> Iterator[str]:
    """`uvicorn --factory` in its own process on 127.0.0.1; stopped (by its pid) on exit."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{factory} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{factory} did not become healthy")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load(url: str, headers: dict[str, str], *, concurrency: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """Runs the load generator in a separate process and returns its figures."""
    command = [sys.executable, "-m", "tests.bench._loadgen", "--url", url]
    command += ["--concurrency", str(concurrency), "--seconds", str(seconds)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]
