"""Activity ingest: `POST /v1/events/batch` (1000 events each) on Postgres, through the
gateway and straight to members.

    python -m tests.bench.members_ingest [--seconds 8] [--rounds 2] [--concurrency 4] [--members 1000]

Starts members and the gateway as real uvicorn processes over temporary Postgres databases
(relay off: nothing consumes the events), creates a community and `--members` members
through the public API and a partner API key with `events:write`, then a separate load
process posts batches of fresh events spread over those members, alternating runs through
the gateway (the API key) and straight to members (an internal token for the same
partner). Prints events/s, latency, and the CPU each part spent per event: the gateway,
members, and the Postgres backends serving them. On a shared machine wall-clock figures
mostly measure the neighbours; CPU per event measures us. Target: >= 30,000 events/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.bench._harness import BenchReport, anchor_beside, load, median_run, run_standalone
from tests.bench._stack import Stack, running_stack, write_ids

CPU_PARTS = ("gateway", "members", "postgres")
TARGET_EVENTS_PER_SECOND = 30_000


def measure(stack: Stack, url: str, headers: dict[str, str], args: argparse.Namespace, **batch: Any) -> dict[str, Any]:
    meter = stack.meter()
    with meter.measure() as used:
        figures = load(
            url,
            headers,
            concurrency=args.concurrency,
            seconds=args.seconds,
            processes=args.processes,
            method="POST",
            mode="events-batch",
            **batch,
        )
    figures["events_per_second"] = figures["accepted"] / figures["seconds"] if figures["seconds"] else 0.0
    recorded = max(1, figures["all_accepted"])
    figures["cpu_us"] = {part: used.get(part, 0.0) / recorded * 1e6 for part in CPU_PARTS}
    figures["load_average"] = used["load_average"]
    figures["rps"] = figures["events_per_second"]  # median_run sorts by this
    return figures


def row(name: str, figures: dict[str, Any]) -> str:
    cpu = figures["cpu_us"]
    return (
        f"{name:<16} {figures['events_per_second']:>9,.0f} {figures['p50_ms']:>7.0f} {figures['p99_ms']:>7.0f}"
        + "".join(f" {cpu[part]:>8.1f}" for part in CPU_PARTS)
        + f"   {figures['accepted']:>7} ok={figures['statuses']} dup={figures['duplicates']}"
        f" load {figures['load_average']:.1f}"
    )


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=2, help="gateway/direct runs alternate this many times")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, Any]]] = {}
    with running_stack(db_pool=args.concurrency + 2) as stack, tempfile.TemporaryDirectory() as tmp:
        community_id = stack.create_community()
        members_file = write_ids(Path(tmp) / "members", stack.create_members(args.members))
        key_headers, partner = stack.api_key("events:write")
        direct_headers = stack.internal_headers(partner)
        batch = {"members_file": members_file, "community_id": community_id, "batch": args.batch}
        for _ in range(args.rounds):
            for name, url, headers in (
                ("via gateway", f"{stack.gateway.url}/v1/events/batch", key_headers),
                ("direct", f"{stack.members.url}/v1/events/batch", direct_headers),
            ):
                runs.setdefault(name, []).append(measure(stack, url, headers, args, **batch))
    results = {name: median_run(figures) for name, figures in runs.items()}

    report = BenchReport()
    report.add(
        f"POST /v1/events/batch, {args.batch} events/request, {args.concurrency} concurrent, {args.members} members,"
        " Postgres (real auth: partner API key)"
    )
    report.add(f"median of {args.rounds} alternating runs of {args.seconds:g} s; CPU in us per event")
    report.add(
        f"{'':<16} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'gw CPU':>8} {'mem CPU':>8} {'pg CPU':>8}"
        f"   {'events':>7}"
    )
    for name, figures in results.items():
        report.add(row(name, figures))
    for name, figures in results.items():
        rate = figures["events_per_second"]
        met = rate >= TARGET_EVENTS_PER_SECOND
        cpu = sum(figures["cpu_us"].values())
        report.add(
            f"ingest {name}: {rate:,.0f} events/s [{'ok' if met else 'BELOW TARGET'}] (target >= 30,000); "
            f"CPU {cpu:.0f} us/event in all -> at most ~{2e6 / cpu if cpu else 0:,.0f} events/s on 2 idle cores "
            + anchor_beside(),
            met=met,
        )
    return report


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
