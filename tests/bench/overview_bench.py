"""The member overview: its latency against the slowest of the parts it composes.

`python -m tests.bench.overview_bench [--seconds 3] [--rounds 3] [--concurrency 1] [--samples 200]`

Starts the gateway and the four services as real uvicorn processes on free 127.0.0.1 ports
over temporary Postgres databases (dropped afterwards), logs in as the bootstrap admin and
makes a member with a ticket and some points through the public API. Then, at a low fixed
concurrency (latency, not throughput), a separate load process reads through the gateway,
alternating runs: each of the overview's five parts on its own (`/v1/members/{id}`,
`/points`, `/badges`, the open tickets, `/contact-budget`) and the overview itself.

The overview reads its parts at once, so it should take about as long as its slowest part.
Target: overview p50 <= 1.3 x the p50 of its slowest part, timed in the same requests (the
overview's `Server-Timing` gives each part's duration): what composing adds on top of
waiting for the parts. The bench also sets the overview against each part read on its own.
That comparison holds only where the five parts find free cores at once: the parts are
CPU-bound (a few ms each, see the CPU column), so on a 2-core machine shared with others
they queue for CPU and the overview costs nearer the sum of its parts than the slowest one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from services.common.settings import SERVICES
from tests.bench._harness import (
    BenchReport,
    CpuMeter,
    Server,
    free_port,
    load,
    median_run,
    temporary_databases,
    uvicorn,
)
from tests.bench._http import Connection, header_lines, header_value, request_head
from tests.bench._stack import login

TARGET_RATIO = 1.3


@contextlib.contextmanager
def five_processes() -> Iterator[tuple[dict[str, Server], dict[str, str]]]:
    """The gateway and the four services on fresh databases; the servers and the admin's headers."""
    email, password = "bench-admin@qunyun.local", secrets.token_urlsafe(18)
    ports = {service: free_port() for service in SERVICES}
    with temporary_databases(SERVICES) as database_url:
        env = {
            **os.environ,
            "QUNYUN_DATABASE_URL": database_url,
            **{f"QUNYUN_{s.upper()}_URL": f"http://127.0.0.1:{ports[s]}" for s in SERVICES},
            "QUNYUN_RATE_LIMIT": "1000000000/minute",
            "QUNYUN_LOG_LEVEL": "WARNING",
            "QUNYUN_ADMIN_EMAIL": email,
            "QUNYUN_ADMIN_PASSWORD": password,
            "QUNYUN_DB_POOL_SIZE": "4",
            "PYTHONPATH": os.getcwd(),
        }
        with contextlib.ExitStack() as stack:
            servers = {
                service: stack.enter_context(uvicorn(f"services.{service}.app:create_app", ports[service], env))
                for service in ("members", "content", "rewards", "feedback")
            }
            servers["gateway"] = stack.enter_context(uvicorn("tests.bench._apps:gateway", ports["gateway"], env))
            headers, _ = login(servers["gateway"].url, email, password)
            yield servers, headers


def seed(gateway: str, headers: dict[str, str]) -> str:
    """A member with a ticket and points, made through the public API: its id."""
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        member = client.post(
            "/v1/members", json={"external_id": f"bench-{secrets.token_hex(4)}", "display_name": "Lin"}
        )
        member.raise_for_status()
        member_id = str(member.json()["id"])
        client.post(
            "/v1/points/adjustments",
            json={"member_id": member_id, "delta": 100, "reason": "bench"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        ).raise_for_status()
        client.post(
            "/v1/tickets",
            json={"member_id": member_id, "subject": "Bench", "body": "A ticket", "category": "question"},
        ).raise_for_status()
    return member_id


def targets(member_id: str) -> dict[str, str]:
    open_tickets = f"/v1/tickets?member_id={member_id}&status=new&status=open&status=pending&limit=50"
    return {
        "member (members)": f"/v1/members/{member_id}",
        "points (rewards)": f"/v1/members/{member_id}/points",
        "badges (rewards)": f"/v1/members/{member_id}/badges?limit=200",
        "open tickets (feedback)": open_tickets,
        "contact budget (content)": f"/v1/members/{member_id}/contact-budget",
        "overview (gateway)": f"/v1/members/{member_id}/overview",
    }


def composition_overhead(gateway: str, headers: dict[str, str], path: str, samples: int) -> tuple[float, float]:
    """p50 of the overview's latency and of its slowest part in the same request (its
    `Server-Timing`), in ms: what composing adds beyond waiting for the parts. Timed with the
    benches' own client (tests/bench/_http.py), whose few tens of microseconds a request stay
    out of the figure; a general client (httpx) added a few hundred to every overview."""

    async def timed() -> tuple[list[float], list[float]]:
        head, (host, port) = request_head("GET", gateway + path)
        message = head + header_lines(headers) + b"\r\n"
        connection = Connection(host, port)
        totals: list[float] = []
        slowest: list[float] = []
        try:
            for _ in range(samples):
                started = time.perf_counter()
                status, _body = await connection.request(message)
                totals.append((time.perf_counter() - started) * 1000)
                timing = header_value(connection.head, b"server-timing")
                if status != 200 or timing is None:
                    raise RuntimeError(f"the overview answered {status} (Server-Timing: {timing})")
                slowest.append(max(float(entry.split(";dur=")[1]) for entry in timing.split(", ")))
        finally:
            connection.close()
        return totals, slowest

    totals, slowest = asyncio.run(timed())
    return statistics.median(totals), statistics.median(slowest)


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="the six reads alternate this many times")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--samples", type=int, default=200, help="overviews timed against their Server-Timing")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, Any]]] = {}
    with five_processes() as (servers, headers):
        gateway = servers["gateway"]
        meter = CpuMeter({name: server.pid for name, server in servers.items()})
        member_id = seed(gateway.url, headers)
        paths = targets(member_id)
        for _ in range(args.rounds):
            for name, path in paths.items():
                with meter.measure() as used:
                    figures = load(gateway.url + path, headers, concurrency=args.concurrency, seconds=args.seconds)
                answered = max(1, figures["all_requests"])
                figures["cpu_ms"] = sum(used.get(s, 0.0) for s in servers) / answered * 1000
                figures["gateway_cpu_ms"] = used.get("gateway", 0.0) / answered * 1000
                figures["load_average"] = used["load_average"]
                runs.setdefault(name, []).append(figures)
        total_p50, slowest_p50 = composition_overhead(gateway.url, headers, paths["overview (gateway)"], args.samples)
    results = {name: median_run(figures) for name, figures in runs.items()}

    report = BenchReport()
    report.add(f"GET through the gateway as the admin, concurrency {args.concurrency}, 127.0.0.1, Postgres")
    report.add(f"median of {args.rounds} alternating runs of {args.seconds:g} s")
    report.add("CPU: ms per request of all five processes (and of the gateway alone)")
    report.add(f"{'':<26} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>7} {'gw CPU':>7}   statuses")
    for name, figures in results.items():
        report.add(
            f"{name:<26} {figures['rps']:>8.0f} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f} "
            f"{figures['cpu_ms']:>7.2f} {figures['gateway_cpu_ms']:>7.2f}   {figures['statuses']} "
            f"load {figures['load_average']:.1f}"
        )
    overview = results.pop("overview (gateway)")
    slowest_name, slowest = max(results.items(), key=lambda item: item[1]["p50_ms"])
    ratio = overview["p50_ms"] / slowest["p50_ms"] if slowest["p50_ms"] else float("inf")
    all_ok = all(set(f["statuses"]) == {"200"} for f in (overview, *results.values()))
    report.add("every read answered 200" if all_ok else "some reads did not answer 200", met=all_ok)
    parts_cpu = sum(f["cpu_ms"] for f in results.values())
    report.add(
        f"overview CPU {overview['cpu_ms']:.2f} ms vs its five parts read one by one {parts_cpu:.2f} ms: "
        "on few cores the parts run side by side only as far as CPU is free"
    )
    in_request = total_p50 / slowest_p50 if slowest_p50 else float("inf")
    report.add(
        f"overview p50 {total_p50:.2f} ms = {in_request:.2f} x its slowest part's p50 {slowest_p50:.2f} ms "
        f"in the same requests (Server-Timing, {args.samples} requests); target <= {TARGET_RATIO}",
        met=in_request <= TARGET_RATIO,
    )
    report.add(
        f"against the parts read alone: overview p50 {overview['p50_ms']:.2f} ms = {ratio:.2f} x the slowest "
        f"({slowest_name}, {slowest['p50_ms']:.2f} ms); near 1 only with free cores for the five at once"
    )
    return report


def main() -> int:
    report = run_bench(sys.argv[1:])
    print("\n".join(report.lines))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
