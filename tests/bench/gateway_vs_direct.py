"""The gateway hop: `GET /v1/members/{id}` through the gateway vs straight to members.

`python -m tests.bench.gateway_vs_direct [--seconds 5] [--rounds 3] [--concurrency 64] [--transports aiohttp,httpx]`

Starts members and the gateway as real uvicorn processes on free 127.0.0.1 ports over
temporary Postgres databases (dropped afterwards). The admin comes from the
`QUNYUN_ADMIN_*` bootstrap and logs in with `POST /v1/auth/token`; it creates a member
through the public API. Then a separate load process drives the real members route at a
fixed concurrency, straight to members (internal token, as the gateway would send) and
through the gateway (the admin's bearer token: authentication, rate limit, routing,
internal token, proxy), alternating runs, and prints req/s, p50, p99 and the CPU each
process spent per request.

On a shared 2-core machine wall-clock figures mostly measure the neighbours; CPU per
request does not. With gateway CPU G and members CPU M per request on the same cores,
the best the gateway path can do is about M / (G + M) of direct throughput.
Targets: gateway >= 70 % of direct throughput, <= 3 ms added at p99.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tests.bench._harness import BenchReport, load, median_run
from tests.bench._stack import running_stack

CPU_PARTS = ("gateway", "members", "postgres")


def row(name: str, figures: dict[str, Any]) -> str:
    cpu = figures["cpu_us"]
    return (
        f"{name:<20} {figures['rps']:>8.0f} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f}"
        + "".join(f" {cpu[part]:>9.0f}" for part in CPU_PARTS)
        + f"   {figures['requests']:>6} {figures['statuses']} load {figures['load_average']:.1f}"
    )


def measure(meter_factory: Any, url: str, headers: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    meter = meter_factory()
    with meter.measure() as used:
        figures = load(url, headers, concurrency=args.concurrency, seconds=args.seconds)
    answered = max(1, figures["all_requests"])
    figures["cpu_us"] = {part: used.get(part, 0.0) / answered * 1e6 for part in CPU_PARTS}
    figures["load_average"] = used["load_average"]
    return figures


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="direct/gateway runs alternate this many times")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transports", default="aiohttp", help="gateway transports to compare: aiohttp,httpx")
    parser.add_argument("--pool", type=int, default=200, help="gateway upstream pool size")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, Any]]] = {}
    for transport in args.transports.split(","):
        with running_stack(transport=transport, pool=args.pool) as stack:
            member_id = stack.create_members(1)[0]
            path = f"/v1/members/{member_id}"
            direct_headers = stack.internal_headers(stack.admin)
            # Direct and gateway runs alternate, so a neighbour's load burst hits both alike.
            for _ in range(args.rounds):
                for name, url, headers in (
                    ("direct", stack.members.url + path, direct_headers),
                    (f"gateway ({transport})", stack.gateway.url + path, stack.admin_headers),
                ):
                    runs.setdefault(name, []).append(measure(stack.meter, url, headers, args))
    results = {name: median_run(figures) for name, figures in runs.items()}

    report = BenchReport()
    report.add(f"GET /v1/members/{{id}} (real auth: staff JWT), concurrency {args.concurrency}, 127.0.0.1, Postgres")
    report.add(f"median of {args.rounds} alternating runs of {args.seconds:g} s; CPU in us per request")
    report.add(
        f"{'':<20} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'gw CPU':>9} {'mem CPU':>9} {'pg CPU':>9}   {'reqs':>6}"
    )
    direct = results["direct"]
    for name, figures in results.items():
        report.add(row(name, figures))
    for name, figures in results.items():
        if name == "direct":
            continue
        ratio = figures["rps"] / direct["rps"] if direct["rps"] else 0.0
        added = figures["p99_ms"] - direct["p99_ms"]
        met = ratio >= 0.70 and added <= 3.0
        report.add(
            f"{name}: {ratio:.0%} of direct throughput, p99 +{added:.2f} ms  [{'ok' if met else 'BELOW TARGET'}]"
            " (target >= 70 %, <= 3 ms)",
            met=met,
        )
        gateway_cpu = figures["cpu_us"]["gateway"]
        members_cpu = figures["cpu_us"]["members"] + figures["cpu_us"]["postgres"]
        if gateway_cpu + members_cpu > 0:
            report.add(
                f"  CPU per request: gateway {gateway_cpu:.0f} us, members + Postgres {members_cpu:.0f} us -> "
                f"on shared cores the gateway path can reach at best ~{members_cpu / (gateway_cpu + members_cpu):.0%}"
                " of direct throughput"
            )
    return report


def main(argv: list[str] | None = None) -> int:
    report = run_bench(argv)
    print("\n".join(report.lines))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
