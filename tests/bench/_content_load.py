"""What the content bench runs besides its phases: the stack (gateway, members and two
content replicas as real uvicorn processes), the load worker processes and the webhook
receiver process.

- `content_stack()`: fresh databases, members, two content replicas (both run the
  publisher and the relay; the gateway sends requests to the first), the gateway with
  partner webhooks allowed to loopback; the admin logged in. Default job intervals.
- `run_workers(configs)`: one process per config (`python -m tests.bench._content_load
  --worker FILE`), all starting at the same instant; their latencies are merged, so p99 is
  the p99 of every request, not an average of per-process figures.
- `receiver(port)`: answers every webhook 204 and keeps `(post_id, receipt time)`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from services.common.settings import Settings
from tests.bench._harness import CpuMeter, PostgresCpu, Server, asyncpg_dsn, free_port, temporary_databases, uvicorn
from tests.bench._http import Connection, header_lines, request_head
from tests.bench._stack import login

SERVICES = ("gateway", "members", "content")


@dataclass
class ContentStack:
    gateway: Server
    members: Server
    content: list[Server]
    settings: Settings
    admin_headers: dict[str, str]

    def dsn(self, service: str) -> str:
        """An asyncpg DSN for one service's database (the bench seeds and verifies with SQL)."""
        return asyncpg_dsn(self.settings.database_url_for(service))  # type: ignore[arg-type]

    def meter(self) -> CpuMeter:
        servers = {"gateway": self.gateway.pid, "members": self.members.pid}
        servers |= {f"content-{i + 1}": server.pid for i, server in enumerate(self.content)}
        urls = [self.settings.database_url_for(s) for s in SERVICES]  # type: ignore[arg-type]
        return CpuMeter(servers, PostgresCpu(urls))


@contextlib.contextmanager
def content_stack(replicas: int = 2, **overrides: str) -> Iterator[ContentStack]:
    """`overrides`: more `QUNYUN_*` environment for every process (e.g. to profile a phase)."""
    email, password = "bench-admin@qunyun.local", secrets.token_urlsafe(18)
    members_port, gateway_port = free_port(), free_port()
    content_ports = [free_port() for _ in range(replicas)]
    with temporary_databases(SERVICES) as database_url:
        env = {
            **os.environ,
            "QUNYUN_DATABASE_URL": database_url,
            "QUNYUN_MEMBERS_URL": f"http://127.0.0.1:{members_port}",
            "QUNYUN_CONTENT_URL": f"http://127.0.0.1:{content_ports[0]}",
            # Not started here: closed ports, never whatever listens on the defaults.
            **{f"QUNYUN_{s.upper()}_URL": f"http://127.0.0.1:{free_port()}" for s in ("rewards", "feedback")},
            "QUNYUN_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
            "QUNYUN_RATE_LIMIT": "1000000000/minute",
            "QUNYUN_LOG_LEVEL": "WARNING",
            "QUNYUN_ADMIN_EMAIL": email,
            "QUNYUN_ADMIN_PASSWORD": password,
            "QUNYUN_INTERNAL_TOKEN_TTL_SECONDS": "3600",
            "QUNYUN_WEBHOOK_ALLOW_PRIVATE": "true",
            "QUNYUN_BENCH_POOL": "200",
            "PYTHONPATH": os.getcwd(),
            **overrides,
        }
        settings = Settings(database_url=database_url)
        with contextlib.ExitStack() as stack:
            members = stack.enter_context(uvicorn("services.members.app:create_app", members_port, env))
            content = [stack.enter_context(uvicorn("services.content.app:create_app", p, env)) for p in content_ports]
            gateway = stack.enter_context(uvicorn("tests.bench._apps:gateway", gateway_port, env))
            headers, _admin = login(gateway.url, email, password)
            yield ContentStack(gateway, members, content, settings, headers)


# ---------------------------------------------------------------- load workers


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    statuses: Counter[int] = field(default_factory=Counter)  # every request
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the workers' own CPU while sending (their start-up left out)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else float("nan")


def run_workers(configs: list[dict[str, Any]], start_in: float = 1.5) -> LoadResult:
    """Runs one worker process per config, all starting together; merges what they saw."""
    start_at = time.time() + start_in
    with tempfile.TemporaryDirectory() as scratch:
        processes, answers = [], []
        for i, config in enumerate(configs):
            path = Path(scratch) / f"worker-{i}.json"
            path.write_text(json.dumps(config | {"start_at": start_at}))
            # Figures come back in a file: a long run's latencies outgrow a pipe's buffer.
            answers.append(Path(scratch) / f"worker-{i}.out.json")
            command = [
                sys.executable,
                "-m",
                "tests.bench._content_load",
                "--worker",
                str(path),
                "--out",
                str(answers[-1]),
            ]
            processes.append(subprocess.Popen(command))
        codes = [process.wait() for process in processes]  # all of them, before the directory goes
        if any(codes):
            raise RuntimeError(f"a load worker failed: exit statuses {codes}")
        outputs = [json.loads(answer.read_text()) for answer in answers]
    merged = LoadResult()
    for figures in outputs:
        merged.latencies += figures["latencies"]
        merged.statuses.update({int(k): v for k, v in figures["statuses"].items()})
        merged.errors += figures["errors"]
        merged.seconds = max(merged.seconds, figures["seconds"])
        merged.cpu_seconds += figures["cpu_seconds"]
    return merged


async def _work(config: dict[str, Any]) -> dict[str, Any]:
    """Keeps `concurrency` requests in flight until `seconds` pass or `requests` are sent.

    Bodies: with `members`, each request is a contact permit for
    `members[(n // burst) % len(members)]`, so `burst` consecutive requests (in flight at
    once) ask for the same member."""
    headers = config["headers"] | {"Content-Type": "application/json"}
    members: list[str] = config.get("members", [])
    burst = config.get("burst", 1)
    limit = config.get("requests") or 1 << 62
    result = LoadResult()
    sent = 0
    await asyncio.sleep(max(0.0, config["start_at"] - time.time()))
    began, cpu_began = time.perf_counter(), time.process_time()
    deadline = began + config.get("seconds", 3600)
    warm_until = began + config.get("warmup", 0.0)
    head, address = request_head(config["method"], config["url"])
    head += header_lines(headers)

    async def worker() -> None:
        nonlocal sent
        connection = Connection(*address)
        while sent < limit and time.perf_counter() < deadline:
            n, sent = sent, sent + 1
            body = b""
            if members:
                member_id = members[(n // burst) % len(members)]
                body = json.dumps(
                    {"member_id": member_id, "community_id": config["community_id"], "kind": config["kind"]}
                ).encode()
            started = time.perf_counter()
            try:
                status, _ = await connection.request(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                connection.close()
                result.errors += 1
                continue
            result.statuses[status] += 1
            if started >= warm_until:
                result.latencies.append(time.perf_counter() - started)
        connection.close()

    await asyncio.gather(*(worker() for _ in range(config["concurrency"])))
    result.seconds = time.perf_counter() - began
    return {
        "cpu_seconds": time.process_time() - cpu_began,
        "latencies": result.latencies,
        "statuses": result.statuses,
        "errors": result.errors,
        "seconds": result.seconds,
    }


# ---------------------------------------------------------------- the webhook receiver


def run_receiver(port: int) -> None:
    from aiohttp import web

    receipts: list[tuple[str, float]] = []

    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        receipts.append((body["data"]["post_id"], time.time()))
        return web.Response(status=204)

    async def dump(_request: web.Request) -> web.Response:
        return web.json_response(receipts)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    app.router.add_get("/dump", dump)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    """The receiver in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.bench._content_load", "--receiver", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                import urllib.request

                urllib.request.urlopen(f"{base}/dump", timeout=1).read()
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", help="a JSON config file")
    parser.add_argument("--out", help="where a worker writes its figures (JSON)")
    parser.add_argument("--receiver", type=int, help="a port")
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
    elif args.worker:
        figures = uvloop.run(_work(json.loads(Path(args.worker).read_text())))
        Path(args.out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
