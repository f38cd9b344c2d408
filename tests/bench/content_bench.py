"""Content benchmarks: `python -m tests.bench.content_bench [--posts 10000] [--seconds 6]`.

Gateway, members and two content replicas run as real uvicorn processes over fresh
Postgres databases (dropped afterwards), with the default job intervals; load comes from
several worker processes started together. Every phase prints the CPU each process spent
per operation, Postgres's backends included. Targets:

1. Publisher: `--posts` posts seeded with SQL, all due at one instant, released by the two
   replicas in <= 10 s, each exactly once (as many `published`, as many
   `content.post_published` outbox rows, no post twice).
2. Contact permits through the gateway: >= 1,000 granted/s over many members; then every
   member asked for more than its budget at once: zero over-grants.
3. The calendar: `GET /v1/posts?community_id&from&to` over a month of `--posts` posts
   through the gateway, p99 < 50 ms (and `GET /v1/members/{id}` of the same stack beside it).
4. Publish latency: publish_at -> the partner's webhook received, p99 < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.bench._content_load import SERVICES, ContentStack, LoadResult, content_stack, receiver, run_workers
from tests.bench._harness import BenchReport, PostgresCpu, run_standalone

WORKERS = 3  # load processes


def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


class Probe:
    """One connection kept open for polling (a new connection per poll would fork a
    Postgres backend 20 times a second on the machine being measured)."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(dsn))

    def value(self, query: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.connection.fetchval(query, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


SEED = """
INSERT INTO posts (id, community_id, title, body, kind, status, publish_at, calendar_at, author_id,
                   created_at, updated_at)
SELECT gen_random_uuid(), $1, 'Bench post ' || g, repeat('周末活动 欢迎大家一起来 ', 8), 'announcement',
       'scheduled', at, at, $2, now(), now()
FROM generate_series(0, $3 - 1) g, LATERAL (SELECT $4::timestamptz + g * $5::interval AS at) t
"""


def seed_posts(stack: ContentStack, community_id: str, count: int, first: datetime, step: timedelta) -> None:
    sql(stack.dsn("content"), SEED, uuid.UUID(community_id), uuid.uuid4(), count, first, step)


class BackendCpu(PostgresCpu):
    """Postgres CPU of one kind of backend of these databases: `client backend` (the work
    the services asked for) or `autovacuum worker` (cleaning up after it)."""

    def __init__(self, database_urls: list[str], backend_type: str) -> None:
        super().__init__(database_urls)
        self.backend_type = backend_type

    def _backends(self) -> list[int]:
        async def query() -> list[int]:
            connection = await asyncpg.connect(self.dsn)
            try:
                rows = await connection.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[]) AND backend_type = $2"
                    " AND pid <> pg_backend_pid()",
                    self.databases,
                    self.backend_type,
                )
            finally:
                await connection.close()
            return [row["pid"] for row in rows]

        return asyncio.run(query())


class Cpu:
    """CPU per operation, net of what each process burns idle (relay and publisher polls,
    the members relay retrying the services this stack does not run): on a shared machine
    at a low rate, the idle share would otherwise swamp the per-operation figure."""

    def __init__(self, stack: ContentStack, idle_seconds: float = 3.0) -> None:
        self.stack = stack
        with self._raw() as used:
            time.sleep(idle_seconds)
        self.idle = {name: seconds / idle_seconds for name, seconds in used.items() if name != "load_average"}

    @contextlib.contextmanager
    def _raw(self) -> Iterator[dict[str, float]]:
        """CPU seconds per process, Postgres in total and per database (`pg <service>`)."""
        meter = self.stack.meter()
        urls = {s: self.stack.settings.database_url_for(s) for s in SERVICES}  # type: ignore[arg-type]
        databases = {f"pg {s}": BackendCpu([url], "client backend") for s, url in urls.items()}
        databases["pg autovacuum"] = BackendCpu(list(urls.values()), "autovacuum worker")
        for database in databases.values():
            database.start()
        with meter.measure() as used:
            yield used
        used |= {name: database.seconds() for name, database in databases.items()}

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """Net CPU seconds per process over the block (filled in when it ends)."""
        net: dict[str, float] = {}
        started = time.monotonic()
        with self._raw() as used:
            yield net
        elapsed = time.monotonic() - started
        net |= {name: max(0.0, used[name] - self.idle.get(name, 0.0) * elapsed) for name in self.idle}
        net["load_average"] = used["load_average"]

    def idle_line(self) -> str:
        parts = ", ".join(f"{name} {rate * 1000:.0f}" for name, rate in self.idle.items())
        return f"idle CPU ms per second (subtracted from every per-operation figure): {parts}"


def cpu_line(used: dict[str, float], operations: int, what: str) -> str:
    per = 1e6 / max(1, operations)
    parts = [f"{name} {seconds * per:,.0f}" for name, seconds in used.items() if name != "load_average"]
    return f"  CPU us per {what}: " + ", ".join(parts) + f" (load average {used['load_average']:.1f})"


def ceiling_line(used: dict[str, float], operations: int, what: str) -> str:
    """What the machine could do at these CPU costs: every process of the run shares its cores."""
    parts = ("gateway", "members", "content-1", "content-2", "postgres", "load generator")
    total = sum(used.get(part, 0.0) for part in parts) / max(1, operations)
    cores = os.cpu_count() or 1
    gateway = used.get("gateway", 0.0) / max(1, operations)
    return (
        f"  all processes: {total * 1e6:,.0f} us CPU per {what}, so {cores} cores serve at most "
        f"{cores / total if total else float('inf'):,.0f}/s with nothing else running; the gateway's "
        f"{gateway * 1e6:,.0f} us alone would allow {1 / gateway if gateway else float('inf'):,.0f}/s on one core"
    )


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def api(stack: ContentStack, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, stack.gateway.url + path, headers=stack.admin_headers, timeout=30, **kwargs)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def wait_for(check: Any, timeout: float, poll: float = 0.05) -> float:
    """Seconds until `check()` is true (raises after `timeout`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError("timed out")
        time.sleep(poll)
    return time.monotonic() - started


# ---------------------------------------------------------------- 1. the publisher


def publisher_phase(stack: ContentStack, cpu: Cpu, report: BenchReport, posts: int) -> None:
    community_id = api(stack, "POST", "/v1/communities", json={"name": "Bench publisher"})["id"]
    dsn = stack.dsn("content")
    due = datetime.now(UTC) + timedelta(seconds=3)
    seed_posts(stack, community_id, posts, due, timedelta(0))
    # Through the partial index of scheduled posts: the probe itself stays cheap.
    left = "SELECT count(*) FROM posts WHERE status = 'scheduled' AND publish_at <= $2 AND community_id = $1"
    with cpu.measure() as used:
        time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        probe = Probe(dsn)
        try:
            released = wait_for(lambda: probe.value(left, uuid.UUID(community_id), due) == 0, timeout=60)
        finally:
            probe.close()
    (published, last_at), *_ = sql(
        dsn, "SELECT count(*), max(published_at) FROM posts WHERE community_id = $1 AND status = 'published'",
        uuid.UUID(community_id),
    )  # fmt: skip
    (rows, distinct), *_ = sql(
        dsn, "SELECT count(*), count(DISTINCT data->>'post_id') FROM outbox WHERE type = 'content.post_published'"
    )
    once = published == rows == distinct == posts
    met = released <= 10.0 and once
    report.add(
        f"publisher: {posts:,} posts due at one instant, 2 replicas: all published {released:.2f} s after "
        f"publish_at (last pass started at +{(last_at - due).total_seconds():.2f} s)  [{verdict(met)}]"
        " (target <= 10 s)",
        met=met,
    )
    report.add(
        f"  exactly once: {published:,} published, {rows:,} content.post_published outbox rows, "
        f"{distinct:,} distinct posts  [{verdict(once)}]",
        met=once,
    )
    report.add(cpu_line(used, posts, "post"))
    pending = "SELECT count(*) FROM outbox_pending"
    probe = Probe(dsn)
    try:
        drained = wait_for(lambda: probe.value(pending) == 0, timeout=120, poll=0.2)
    finally:
        probe.close()
    report.add(f"  the relay then carried them to the gateway in {released + drained:.1f} s after publish_at")


# ---------------------------------------------------------------- 2. contact permits


def permit_configs(stack: ContentStack, community_id: str, members: list[str], **extra: Any) -> list[dict[str, Any]]:
    base = {
        "url": stack.gateway.url + "/v1/contact-permits",
        "method": "POST",
        "headers": stack.admin_headers,
        "community_id": community_id,
        "kind": "reminder",
    }
    return [base | extra | {"members": members[i::WORKERS]} for i in range(WORKERS)]


def permits_phase(stack: ContentStack, cpu: Cpu, report: BenchReport, seconds: float) -> None:
    community_id = api(stack, "POST", "/v1/communities", json={"name": "Bench permits"})["id"]
    no_quiet = {"quiet_hours": None, "max_promotions_per_day": 2, "min_gap_minutes": 60}
    api(stack, "PUT", f"/v1/communities/{community_id}/publishing-policy", json=no_quiet)
    weekly_max = 10
    policy = {"weekly_max": weekly_max, "weekly_max_promotions": 1, "quiet_hours": None}
    api(stack, "PUT", f"/v1/communities/{community_id}/contact-policy", json=policy)
    dsn = stack.dsn("content")

    # Throughput: many members, each asked a few times (within budget).
    members = [str(uuid.uuid4()) for _ in range(3000)]
    with cpu.measure() as used:
        result = run_workers(permit_configs(stack, community_id, members, concurrency=32, seconds=seconds))
    granted = result.statuses.get(201, 0)
    rate = granted / result.seconds
    met = rate >= 1000 and result.errors == 0
    report.add(
        f"contact permits through the gateway: {granted:,} granted in {result.seconds:.1f} s = {rate:,.0f}/s, "
        f"p50 {result.percentile(0.5):.1f} ms, p99 {result.percentile(0.99):.1f} ms, statuses "
        f"{dict(result.statuses)}  [{verdict(met)}] (target >= 1,000/s)",
        met=met,
    )
    used["load generator"] = result.cpu_seconds
    report.add(cpu_line(used, result.requests, "permit"))
    report.add(ceiling_line(used, result.requests, "permit"))

    # Contention: every member asked 2 more times than its budget, the asks in flight at once.
    crowd = [str(uuid.uuid4()) for _ in range(120)]
    burst = weekly_max + 2
    configs = permit_configs(stack, community_id, crowd, concurrency=2 * burst, burst=burst)
    for config in configs:
        config["requests"] = len(config["members"]) * burst
    contended = run_workers(configs)
    counts = sql(
        dsn,
        "SELECT count(*) AS n FROM contact_permits WHERE member_id = ANY($1::uuid[]) GROUP BY member_id",
        [uuid.UUID(m) for m in crowd],
    )
    over = sum(1 for row in counts if row["n"] > weekly_max)
    exact = len(counts) == len(crowd) and all(row["n"] == weekly_max for row in counts)
    met = over == 0 and len(counts) == len(crowd)
    report.add(
        f"  over-grants: {len(crowd)} members x {burst} concurrent asks, budget {weekly_max}: answers "
        f"{dict(contended.statuses)}, {sum(row['n'] for row in counts):,} permits stored, {over} members over "
        f"budget, every member exactly at budget: {exact}  [{verdict(met)}] (target 0 over-grants)",
        met=met,
    )


# ---------------------------------------------------------------- 3. the calendar


def get_configs(
    stack: ContentStack, path: str, processes: int, concurrency: int, seconds: float
) -> list[dict[str, Any]]:
    config = {"url": stack.gateway.url + path, "method": "GET", "headers": stack.admin_headers}
    return [config | {"concurrency": concurrency, "seconds": seconds, "warmup": 0.5} for _ in range(processes)]


def get_row(name: str, result: LoadResult, used: dict[str, float]) -> str:
    rps = result.requests / result.seconds
    per = 1e6 / max(1, result.requests)
    used = used | {"load generator": result.cpu_seconds}
    parts = ("gateway", "members", "content-1", "postgres", "load generator")
    cpu = " ".join(f"{used.get(part, 0.0) * per:>9,.0f}" for part in parts)
    return (
        f"  {name:<34} {rps:>7,.0f} {result.percentile(0.5):>7.1f} {result.percentile(0.99):>7.1f} {cpu}"
        f"   {dict(result.statuses)} (load average {used['load_average']:.1f})"
    )


def calendar_phase(stack: ContentStack, cpu: Cpu, report: BenchReport, posts: int, seconds: float) -> None:
    community_id = api(stack, "POST", "/v1/communities", json={"name": "Bench calendar"})["id"]
    month = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    seed_posts(stack, community_id, posts, month, timedelta(days=30) / posts)
    window = f"from={month.isoformat().replace('+00:00', 'Z')}&to={(month + timedelta(days=30)).isoformat()}"
    window = window.replace("+00:00", "Z")
    member_id = api(stack, "POST", "/v1/members", json={"external_id": "bench-1", "display_name": "Mei"})["id"]
    runs = {
        "calendar, a month (limit 50)": f"/v1/posts?community_id={community_id}&{window}",
        "calendar, a month (limit 200)": f"/v1/posts?community_id={community_id}&{window}&limit=200",
        "members GET /v1/members/{id}": f"/v1/members/{member_id}",
    }
    report.add(f"GET through the gateway, {WORKERS} processes x 4 in flight; CPU in us per request")
    report.add(
        f"  {'':<34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'gateway':>9} {'members':>9} {'content':>9} "
        f"{'postgres':>9} {'load gen':>9}"
    )
    results: dict[str, LoadResult] = {}
    for name, path in runs.items():
        with cpu.measure() as used:
            results[name] = run_workers(get_configs(stack, path, WORKERS, 4, seconds))
        report.add(get_row(name, results[name], used))
    for name in list(runs)[:2]:
        p99 = results[name].percentile(0.99)
        ok = p99 < 50 and set(results[name].statuses) == {200}
        report.add(f"  {name}: p99 {p99:.1f} ms  [{verdict(ok)}] (target < 50 ms)", met=ok)


# ---------------------------------------------------------------- 4. publish latency


def latency_phase(stack: ContentStack, cpu: Cpu, report: BenchReport, count: int, spread: float) -> None:
    community_id = api(stack, "POST", "/v1/communities", json={"name": "Bench latency"})["id"]
    dsn = stack.dsn("content")
    with receiver() as base:
        api(
            stack,
            "POST",
            "/v1/webhook-endpoints",
            json={"url": f"{base}/hooks", "event_types": ["content.post_published"]},
        )
        first = datetime.now(UTC) + timedelta(seconds=2)
        seed_posts(stack, community_id, count, first, timedelta(seconds=spread) / count)
        due = {
            str(row["id"]): row["publish_at"]
            for row in sql(dsn, "SELECT id, publish_at FROM posts WHERE community_id = $1", uuid.UUID(community_id))
        }
        with cpu.measure() as used:

            def receipts() -> list[tuple[str, float]]:
                return [(p, t) for p, t in httpx.get(f"{base}/dump", timeout=10).json() if p in due]

            wait_for(lambda: len(receipts()) >= count, timeout=spread + 60, poll=0.25)
        got = receipts()
    latencies = sorted(t - due[p].timestamp() for p, t in got)
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    met = p99 < 2.0 and len({p for p, _ in got}) == count
    report.add(
        f"publish latency, publish_at -> webhook received: {count} posts over {spread:.0f} s, p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms  [{verdict(met)}] (target p99 < 2 s)",
        met=met,
    )
    report.add(cpu_line(used, count, "post published and delivered"))


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000, help="posts due at once, and posts in the month")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--latency-posts", type=int, default=160)
    parser.add_argument("--latency-spread", type=float, default=8.0, help="seconds the latency posts are spread over")
    parser.add_argument("--phases", default="publisher,permits,calendar,latency", help="which phases to run")
    args = parser.parse_args(argv)
    phases = {
        "publisher": lambda stack, cpu, report: publisher_phase(stack, cpu, report, args.posts),
        "permits": lambda stack, cpu, report: permits_phase(stack, cpu, report, args.seconds),
        "calendar": lambda stack, cpu, report: calendar_phase(stack, cpu, report, args.posts, args.seconds),
        "latency": lambda stack, cpu, report: latency_phase(
            stack, cpu, report, args.latency_posts, args.latency_spread
        ),
    }
    report = BenchReport()
    with content_stack() as stack:
        cpu = Cpu(stack)
        report.add(cpu.idle_line())
        for name in args.phases.split(","):
            phases[name](stack, cpu, report)
    return report


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
