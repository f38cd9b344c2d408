"""Load generator for the benches, run in its own process: `python -m tests.bench._loadgen ...`.

Keeps `--concurrency` requests in flight for `--seconds` with one aiohttp session, then
prints one JSON line: requests, errors, req/s, p50/p99 latency in ms, status counts.
`--mode events-batch` posts fresh `{events: [...]}` bodies (new event ids every time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import aiohttp


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def events_body(member_id: str, community_id: str, size: int) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    events = [
        {
            "id": str(uuid.uuid4()),
            "member_id": member_id,
            "community_id": community_id,
            "type": "check_in",
            "occurred_at": now,
        }
        for _ in range(size)
    ]
    return json.dumps({"events": events}).encode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    if args.mode == "events-batch":
        headers["Content-Type"] = "application/json"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    warmup_until = time.perf_counter() + args.warmup
    deadline = warmup_until + args.seconds
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            while True:
                started = time.perf_counter()
                if started >= deadline:
                    return
                body = (
                    events_body(args.member_id, args.community_id, args.batch) if args.mode == "events-batch" else None
                )
                try:
                    async with session.request(args.method, args.url, data=body) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    errors += 1
                    continue
                if started >= warmup_until:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - max(began, warmup_until - args.warmup) - args.warmup
    latencies.sort()
    measured = len(latencies)
    return {
        "requests": measured,
        "errors": errors,
        "rps": measured / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": dict(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--mode", choices=["plain", "events-batch"], default="plain")
    parser.add_argument("--member-id", default="")
    parser.add_argument("--community-id", default="")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
