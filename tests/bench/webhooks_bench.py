"""Webhook delivery benchmark: `python -m tests.bench.webhooks_bench`.

The whole system runs in-process on Postgres with its background loops on (relays and
the webhook worker); a receiver runs in a separate process on loopback. Events are
committed to the members outbox, relayed to the gateway, fanned out to the endpoints
and delivered, signed. Prints:

- throughput: deliveries/s for a burst (first commit -> last receipt);
- latency: p50/p99 from event commit to receipt, at a steady rate below capacity.

Targets: >= 1,000 deliveries/s; commit -> receipt p99 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.common.contracts.members import MemberCreated
from services.common.events import EventDraft, emit_many
from tests.gateway.webhook_support import free_port, sample
from tests.pg import drop_run_databases, migrate_templates
from tests.system import running_system, staff

ENDPOINTS = 8
BURST_EVENTS = 2000
BATCH = 200
PACED_RATE = 50  # events per second (x ENDPOINTS deliveries)
PACED_SECONDS = 10


def run_receiver(port: int) -> None:
    """The receiver process: answers 204 and keeps (n, phase, receipt time) per request."""
    from aiohttp import web

    receipts: list[tuple[int, str, float]] = []

    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        phase, n = body["data"]["external_id"].split(":")
        receipts.append((int(n), phase, time.time()))
        return web.Response(status=204)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"count": len(receipts)})

    async def dump(_request: web.Request) -> web.Response:
        return web.json_response(receipts)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    app.router.add_get("/stats", stats)
    app.router.add_get("/dump", dump)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def wait_for_receipts(client: httpx.AsyncClient, base: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await client.get(f"{base}/stats")).json()["count"] < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {count} receipts")
        await asyncio.sleep(0.02)


async def emit(system: Any, phase: str, numbers: range) -> float:
    """Commit events to the members outbox (one transaction); returns the commit time."""
    db = system.state("members").db
    async with db.session() as session:
        created = [sample(MemberCreated, member_id=str(uuid.uuid4()), external_id=f"{phase}:{n}") for n in numbers]
        await emit_many(session, [EventDraft(event) for event in created])
        await db.commit(session)  # wakes the relay, as a request's commit does
    return time.time()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench() -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "tests.bench.webhooks_bench", "--receiver", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            running_system(relay_enabled=True, relay_interval_ms=200, log_level="ERROR") as system,
            httpx.AsyncClient() as probe,
        ):
            for _ in range(100):
                try:
                    await probe.get(f"{base}/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
            system.apps["gateway"].state.identify_caller = _as_admin
            async with httpx.AsyncClient(transport=system.transport, base_url="http://gateway") as admin:
                for _ in range(ENDPOINTS):
                    created = await admin.post(
                        "/v1/webhook-endpoints", json={"url": f"{base}/hooks", "event_types": ["member.created"]}
                    )
                    assert created.status_code == 201, created.text

            # Burst: throughput.
            total = BURST_EVENTS * ENDPOINTS
            cpu_started = time.process_time()
            started = time.time()
            for start in range(0, BURST_EVENTS, BATCH):
                await emit(system, "burst", range(start, start + BATCH))
            await wait_for_receipts(probe, base, total, timeout=300)
            burst_receipts = [r for r in (await probe.get(f"{base}/dump")).json() if r[1] == "burst"]
            elapsed = max(r[2] for r in burst_receipts) - started
            print(f"burst: {total} deliveries ({BURST_EVENTS} events x {ENDPOINTS} endpoints) in {elapsed:.2f} s")
            cpu = time.process_time() - cpu_started
            print(f"throughput: {total / elapsed:,.0f} deliveries/s")
            print(
                f"cpu: {cpu * 1e6 / total:.0f} us per delivery in the system process "
                f"(relay + fan-out + claim + sign + send + record; load avg {os.getloadavg()[0]:.1f})"
            )

            # Paced: latency from commit to receipt.
            committed: dict[int, float] = {}
            n = 0
            interval = 1 / PACED_RATE
            next_at = time.monotonic()
            while n < PACED_RATE * PACED_SECONDS:
                committed[n] = await emit(system, "paced", range(n, n + 1))
                n += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await wait_for_receipts(probe, base, total + n * ENDPOINTS, timeout=120)
            paced = [r for r in (await probe.get(f"{base}/dump")).json() if r[1] == "paced"]
            latencies = [(t - committed[num]) * 1000 for num, _phase, t in paced]
            print(
                f"paced: {PACED_RATE} events/s x {ENDPOINTS} endpoints for {PACED_SECONDS} s = {len(paced)} deliveries"
            )
            print(
                f"commit -> receipt: p50 {statistics.median(latencies):.1f} ms, "
                f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
            )
    finally:
        receiver.send_signal(signal.SIGINT)
        try:
            receiver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            receiver.kill()


async def _as_admin(_request: Any) -> Any:
    return staff("admin", id="bench-admin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver(args.receiver)
        return
    os.environ.setdefault("QUNYUN_LOG_LEVEL", "ERROR")
    asyncio.run(with_templates(bench))


async def with_templates(work: Callable[[], Awaitable[None]]) -> None:
    """The system clones per-run template databases, which pytest makes at the start of a
    test run; outside pytest the bench makes them itself, and drops all it made afterwards."""
    await migrate_templates()
    try:
        await work()
    finally:
        await drop_run_databases()


if __name__ == "__main__":
    main()
