"""Load generator for the benches, run in its own process: `python -m tests.bench._loadgen ...`.

Keeps `--concurrency` requests in flight for `--seconds`, each on its own keep-alive
connection (tests/bench/_http.py: tens of microseconds of CPU a request), then prints
one JSON line: requests, errors, req/s, p50/p99 latency in ms, status counts, and for
`--mode events-batch` the events accepted and duplicated; `all_*` count the warm-up too.

`--latencies PATH` also writes every measured latency there (the harness merges several
load processes' figures from them).

`--body` sends the same JSON body with every request (`--method POST`: creating tickets, say).

`--headers-file PATH` rotates headers per request: one JSON object of headers per line
(a member's own token, say), taken in turn from a random starting line, so each process
acts for many callers; they add to (and override) the `--header`s.

`--mode events-batch` posts `{events: [...]}` bodies of `--batch` events spread over the
members in `--members-file` (one id per line), with fresh event ids every time. The body
is built once; each request only stamps a new counter into its ids (a bytes replace), so
this process spends its CPU sending, not building JSON, on a machine it shares with the
servers it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop

from tests.bench._http import Connection, header_lines, request_head

STAMP = b"RRRRRRRR"  # first group of every event id in the template, replaced per request
# Microseconds of every occurred_at, replaced by the same counter: each batch is a little
# later than the one before, so members' last_active_at moves forward as in real traffic.
TICK = b"TTTTTT"


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def events_template(member_ids: list[str], community_id: str, size: int) -> bytes:
    """A batch body whose event ids all start with STAMP: `STAMP-<index>-4000-8000-<run>`."""
    run = secrets.token_hex(6)
    start = datetime.now(UTC) - timedelta(days=2)
    events = [
        {
            "id": f"{STAMP.decode()}-{i:04x}-4000-8000-{run}",
            "member_id": member_ids[i % len(member_ids)],
            "community_id": community_id,
            "type": "message_sent" if i % 3 else "check_in",
            "occurred_at": (start + timedelta(seconds=i * 7)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{TICK.decode()}Z",
            "properties": {"channel": "wechat", "n": i},
        }
        for i in range(size)
    ]
    return json.dumps({"events": events}).encode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    template = b""
    fixed = args.body.encode() if args.body else None
    if fixed is not None:
        headers["Content-Type"] = "application/json"
    if args.mode == "events-batch":
        headers["Content-Type"] = "application/json"
        member_ids = Path(args.members_file).read_text().split()
        template = events_template(member_ids, args.community_id, args.batch)
    lines = Path(args.headers_file).read_text().splitlines() if args.headers_file else []
    # Each caller's headers, encoded once; a caller's own header replaces a fixed one of that name.
    rotation = [json.loads(line) for line in lines if line.strip()]
    rotation_lines = [
        header_lines({**{k: v for k, v in headers.items() if k.lower() not in {r.lower() for r in extra}}, **extra})
        for extra in rotation
    ]
    start_line, (host, port) = request_head(args.method, args.url)
    fixed_lines = header_lines(headers)
    turn = secrets.randbelow(len(rotation)) if rotation else 0
    counter = 0
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted = duplicates = errors = 0
    # Everything answered, warm-up included: what the servers' CPU counters saw.
    all_requests = all_accepted = 0
    warmup_until = time.perf_counter() + args.warmup
    deadline = warmup_until + args.seconds

    async def worker() -> None:
        nonlocal errors, counter, accepted, duplicates, all_requests, all_accepted, turn
        connection = Connection(host, port)
        while True:
            started = time.perf_counter()
            if started >= deadline:
                connection.close()
                return
            body = fixed
            if template:
                counter += 1
                body = template.replace(STAMP, b"%08x" % counter).replace(TICK, b"%06d" % (counter % 1_000_000))
            lines = fixed_lines
            if rotation_lines:
                lines = rotation_lines[turn % len(rotation_lines)]
                turn += 1
            message = start_line + lines + b"Content-Length: %d\r\n\r\n" % len(body or b"") + (body or b"")
            try:
                status, payload = await connection.request(message)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                connection.close()
                errors += 1
                continue
            all_requests += 1
            answer = json.loads(payload) if template and status == 200 else {}
            all_accepted += answer.get("accepted", 0)
            if started >= warmup_until:
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                accepted += answer.get("accepted", 0)
                duplicates += answer.get("duplicates", 0)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - max(began, warmup_until - args.warmup) - args.warmup
    latencies.sort()
    measured = len(latencies)
    if args.latencies:
        Path(args.latencies).write_text(json.dumps(latencies))
    return {
        "requests": measured,
        "errors": errors,
        "rps": measured / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": dict(statuses),
        "seconds": elapsed,
        "accepted": accepted,
        "duplicates": duplicates,
        "all_requests": all_requests,
        "all_accepted": all_accepted,
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
    parser.add_argument("--members-file", default="")
    parser.add_argument("--community-id", default="")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--body", default="", help="a JSON body sent with every request")
    parser.add_argument("--headers-file", default="", help="headers per request, one JSON object a line, in turn")
    parser.add_argument("--latencies", default="", help="write every measured latency (s) here, as JSON")
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
