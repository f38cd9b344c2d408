"""The request path: `GET /v1/members/{id}` straight to members and through the gateway,
beside the anchor app (bare FastAPI + asyncpg primary-key SELECT) on the same database.

`python -m tests.bench.gateway_vs_direct [--seconds 5] [--rounds 3] [--concurrency 64] [--processes 4]`

Starts members, the gateway and the anchor app as real uvicorn processes on free 127.0.0.1
ports over temporary Postgres databases (dropped afterwards). The admin comes from the
`QUNYUN_ADMIN_*` bootstrap and logs in with `POST /v1/auth/token`; it creates a member
through the public API. Then `--processes` load processes (the concurrency split between
them) drive each target in turn, rounds alternating so a neighbour's burst hits all alike:
the anchor, members directly (an internal token, as the gateway sends), and the gateway
(the admin's bearer token: authentication, rate limit, routing, internal token, proxy).
It prints req/s, p50, p99 and the CPU every process spent per request, Postgres included,
then the added latency at concurrency 1 (one request at a time, one process).

On a shared 2-core machine wall-clock figures mostly measure the neighbours; CPU per
request does not. Throughput is compared with the anchor measured in the same minutes.
Targets: direct >= 0.6 of the anchor's req/s; through the gateway >= 0.45 of it, and
<= 1.5 ms added to p50 at concurrency 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tests.bench._harness import ANCHOR, BenchReport, anchor_beside, load, median_run, run_standalone
from tests.bench._stack import Stack, running_stack

CPU_PARTS = ("anchor", "gateway", "members", "postgres")
DIRECT_SHARE, GATEWAY_SHARE, ADDED_P50_MS = 0.6, 0.45, 1.5


def row(name: str, figures: dict[str, Any]) -> str:
    cpu = figures["cpu_us"]
    return (
        f"{name:<10} {figures['rps']:>8.0f} {figures['p50_ms']:>7.2f} {figures['p99_ms']:>7.2f}"
        + "".join(f" {cpu[part]:>9.0f}" for part in CPU_PARTS)
        + f" {sum(cpu.values()):>9.0f}   {figures['requests']:>6} {figures['statuses']}"
        + f" load {figures['load_average']:.1f}"
    )


def measure(
    stack: Stack, url: str, headers: dict[str, str], *, concurrency: int, processes: int, seconds: float
) -> dict[str, Any]:
    meter = stack.meter()
    with meter.measure() as used:
        figures = load(url, headers, concurrency=concurrency, seconds=seconds, processes=processes)
    answered = max(1, figures["all_requests"])
    figures["cpu_us"] = {part: used.get(part, 0.0) / answered * 1e6 for part in CPU_PARTS}
    figures["load_average"] = used["load_average"]
    return figures


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="anchor/direct/gateway runs alternate this many times")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=4, help="load generator processes")
    parser.add_argument("--pool", type=int, default=200, help="gateway upstream pool size")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, Any]]] = {}
    single: dict[str, list[dict[str, Any]]] = {}
    with running_stack(pool=args.pool) as stack:
        member_id = stack.create_members(1)[0]
        path = f"/v1/members/{member_id}"
        targets: tuple[tuple[str, str, dict[str, str]], ...] = (
            ("anchor", stack.anchor.url + path, {}),
            ("direct", stack.members.url + path, stack.internal_headers(stack.admin)),
            ("gateway", stack.gateway.url + path, stack.admin_headers),
        )
        for _ in range(args.rounds):
            for name, url, headers in targets:
                figures = measure(
                    stack, url, headers, concurrency=args.concurrency, processes=args.processes, seconds=args.seconds
                )
                runs.setdefault(name, []).append(figures)
        for _ in range(args.rounds):  # latency alone: one request at a time
            for name, url, headers in targets[1:]:
                figures = measure(stack, url, headers, concurrency=1, processes=1, seconds=args.seconds / 2)
                single.setdefault(name, []).append(figures)
    results = {name: median_run(figures) for name, figures in runs.items()}
    p50 = {name: sorted(f["p50_ms"] for f in figures)[len(figures) // 2] for name, figures in single.items()}
    anchor = results["anchor"]
    ANCHOR.update(rps=anchor["rps"], cpu_us=anchor["cpu_us"]["anchor"] + anchor["cpu_us"]["postgres"])

    report = BenchReport()
    # A ratio means something only if all three answered the read: an anchor failing fast
    # (say, a column it selects moved) would make any target look met or missed.
    failing = [name for name, figures in runs.items() if any(set(f["statuses"]) != {"200"} for f in figures)]
    if failing:
        report.add(f"not every answer was 200 from: {', '.join(failing)}; no ratio is valid", met=False)
    report.add(
        f"GET /v1/members/{{id}} (real auth: staff JWT via the gateway), concurrency {args.concurrency} from "
        f"{args.processes} load processes, 127.0.0.1, Postgres"
    )
    report.add(f"median of {args.rounds} alternating runs of {args.seconds:g} s; CPU in us per request")
    report.add(
        f"{'':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        + "".join(f" {part + ' CPU':>9}" for part in ("anchor", "gw", "members", "pg"))
        + f" {'all CPU':>9}   {'reqs':>6}"
    )
    for name, figures in results.items():
        report.add(row(name, figures))
    beside = anchor_beside()
    direct_share = results["direct"]["rps"] / anchor["rps"] if anchor["rps"] else 0.0
    report.add(
        f"GET /v1/members/{{id}} direct: {results['direct']['rps']:,.0f} req/s = {direct_share:.2f} of the anchor "
        f"(target >= {DIRECT_SHARE}) [{verdict(direct_share >= DIRECT_SHARE)}] {beside}",
        met=direct_share >= DIRECT_SHARE,
    )
    gateway_share = results["gateway"]["rps"] / anchor["rps"] if anchor["rps"] else 0.0
    added = p50["gateway"] - p50["direct"]
    met = gateway_share >= GATEWAY_SHARE and added <= ADDED_P50_MS
    report.add(
        f"GET /v1/members/{{id}} via gateway: {results['gateway']['rps']:,.0f} req/s = {gateway_share:.2f} of anchor "
        f"(target >= {GATEWAY_SHARE}); p50 at concurrency 1 {p50['direct']:.2f} -> {p50['gateway']:.2f} ms, "
        f"+{added:.2f} ms (target <= {ADDED_P50_MS}) [{verdict(met)}] {beside}",
        met=met,
    )
    return report


def verdict(met: bool) -> str:
    return "ok" if met else "BELOW TARGET"


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
