"""Feedback (issue 10): ticket listing, ticket creation and the SLA job, through the gateway.

    python -m tests.bench.feedback_bench [--seconds 6] [--loaders 2] [--concurrency 24]

Starts the gateway and feedback as real uvicorn processes over temporary Postgres databases
(relay off: nothing consumes the events, the outbox fills), logs the bootstrap admin in,
creates an agent (staff JWT) and a partner API key with `tickets:write`: real credentials.
The load comes from `--loaders` separate processes, so no one client is the bottleneck.

1. Listing: 10,000 tickets (seeded with COPY), `GET /v1/tickets?community_id&status&category
   &limit=25` as the agent, page 1 and a deep page (its cursor found by walking the pages).
   The statements per request are counted in-process (a SQLAlchemy listener on the feedback
   app's engine) for both pages: keyset pages cost the same whatever the page.
2. Creation: `POST /v1/tickets` with the partner key (SLA due times computed, the
   `feedback.ticket_created` outbox row written with the ticket).
3. The SLA job: 10,000 open tickets become due in one commit while two more feedback
   processes run (jobs and relay on); the time until 10,000 `feedback.sla_breached` outbox
   rows exist, then a check that no ticket was announced twice.

Prints throughput, latency, and the CPU each process spent per operation: the gateway,
feedback (both SLA replicas in part 3), the Postgres backends serving them, and the load
generators. On a shared 2-core machine wall-clock figures also measure the neighbours; CPU
per operation measures us. Targets: django-helpdesk does 59-88 tickets/s and ~7.5 listings/s
(25 of 10,000 with filters); we aim at 20x (>= 1,760/s) and 100x (>= 750/s), and at the
10,000 breaches within 10 s, exactly once with two replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.settings import Settings
from tests.bench._harness import (
    BenchReport,
    CpuMeter,
    PostgresCpu,
    Server,
    free_port,
    load,
    run_standalone,
    temporary_databases,
)
from tests.bench._harness import uvicorn as run_uvicorn
from tests.bench._stack import login

SERVICES = ("gateway", "feedback")
TICKETS_PER_SECOND = 20 * 88
LISTINGS_PER_SECOND = 100 * 7.5
SLA_TICKETS, SLA_SECONDS = 10_000, 10.0
LISTED = 10_000


@dataclass
class Stack:
    gateway: Server
    feedback: Server
    settings: Settings
    env: dict[str, str]
    admin_headers: dict[str, str]

    def dsn(self, service: str) -> str:
        url = make_url(self.settings.database_url_for(service))  # type: ignore[arg-type]
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def meter(self, **more: int) -> CpuMeter:
        urls = [self.settings.database_url_for(s) for s in SERVICES]  # type: ignore[arg-type]
        return CpuMeter({"gateway": self.gateway.pid, "feedback": self.feedback.pid, **more}, PostgresCpu(urls))

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        response = httpx.post(f"{self.gateway.url}{path}", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


@contextlib.contextmanager
def running_stack(db_pool: int) -> Iterator[Stack]:
    email, password = "bench-admin@qunyun.local", secrets.token_urlsafe(18)
    gateway_port, feedback_port = free_port(), free_port()
    with temporary_databases(SERVICES) as database_url:
        env = {
            **os.environ,
            "QUNYUN_DATABASE_URL": database_url,
            "QUNYUN_FEEDBACK_URL": f"http://127.0.0.1:{feedback_port}",
            "QUNYUN_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
            # Not started here: closed ports, never whatever listens on the defaults.
            **{f"QUNYUN_{s.upper()}_URL": f"http://127.0.0.1:{free_port()}" for s in ("members", "content", "rewards")},
            "QUNYUN_RATE_LIMIT": "1000000000/minute",
            "QUNYUN_LOG_LEVEL": "WARNING",
            "QUNYUN_ADMIN_EMAIL": email,
            "QUNYUN_ADMIN_PASSWORD": password,
            "QUNYUN_RELAY_ENABLED": "false",
            "QUNYUN_DB_POOL_SIZE": str(db_pool),
            # As production runs (overflow 0): connections opened and closed under load would
            # cost feedback CPU and hide Postgres's (the meter sees backends alive at both ends).
            "QUNYUN_DB_MAX_OVERFLOW": "0",
            "PYTHONPATH": os.getcwd(),
        }
        settings = Settings(database_url=database_url)
        with (
            run_uvicorn("services.feedback.app:create_app", feedback_port, env) as feedback,
            run_uvicorn("tests.bench._apps:gateway", gateway_port, env) as gateway,
        ):
            headers, _ = login(gateway.url, email, password)
            yield Stack(gateway, feedback, settings, env, headers)


def loaders_load(url: str, headers: dict[str, str], args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """`args.loaders` load processes at once; their figures summed (latencies: the worst)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with ThreadPoolExecutor(args.loaders) as pool:
        runs = list(
            pool.map(
                lambda _: load(url, headers, concurrency=args.concurrency, seconds=args.seconds, **extra),
                range(args.loaders),
            )
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    statuses: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
    return {
        "rps": sum(r["rps"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "all_requests": sum(r["all_requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "statuses": dict(statuses),
        "loaders_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def measured(meter: CpuMeter, url: str, headers: dict[str, str], args: argparse.Namespace, **extra: Any) -> Any:
    with meter.measure() as used:
        figures = loaders_load(url, headers, args, **extra)
    used["loaders"] = figures["loaders_cpu"]
    answered = max(1, figures["all_requests"])
    figures["cpu_us"] = {part: seconds / answered * 1e6 for part, seconds in used.items() if part != "load_average"}
    figures["load_average"] = used["load_average"]
    return figures


def cpu_line(cpu_us: dict[str, float], unit: str) -> str:
    parts = ", ".join(f"{part} {value:,.0f}" for part, value in cpu_us.items())
    return f"  CPU us/{unit}: {parts}; all {sum(cpu_us.values()):,.0f}"


def target_line(report: BenchReport, what: str, value: float, target: float, unit: str) -> None:
    met = value >= target
    report.add(f"{what}: {value:,.0f} {unit} [{'ok' if met else 'BELOW TARGET'}] (target >= {target:,.0f})", met=met)


# --- seeding ---------------------------------------------------------------------------------


def ticket_record(
    community: uuid.UUID, now: datetime, created: datetime, status: str, category: str, due: datetime
) -> tuple[Any, ...]:
    return (
        uuid.uuid4(), uuid.uuid4(), community, "Order missing", "My tea never arrived.", category,
        random.choice(("low", "normal", "normal", "high")), status, ["bench"], "bench", created, now,
        created, False, due, due, False,
    )  # fmt: skip


TICKET_COLUMNS = [
    "id", "member_id", "community_id", "subject", "body", "category", "priority", "status", "tags", "created_by",
    "created_at", "updated_at", "first_response_at", "business_hours_only", "first_response_due_at",
    "resolution_due_at", "breached",
]  # fmt: skip


async def seed_tickets(dsn: str, records: list[tuple[Any, ...]], *, analyze: bool = True) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table("tickets", records=records, columns=TICKET_COLUMNS)
        if analyze:
            await connection.execute("ANALYZE tickets")
    finally:
        await connection.close()


# --- 1. listing ------------------------------------------------------------------------------


async def statements_per_request(stack: Stack, paths: list[str], agent: Identity) -> list[int]:
    """Each request's statements, counted on an in-process feedback app's engine and its read
    pool (`PreparedRead`s run there, on plain asyncpg connections)."""
    from services.feedback.app import create_app

    settings = Settings(
        database_url=stack.settings.database_url_for("feedback"),
        relay_enabled=False,
        db_pool_size=2,
        log_level="WARNING",
    )
    app = create_app(settings)
    counts: list[int] = []
    async with app.router.lifespan_context(app):
        engine = app.state.db.engine.sync_engine
        seen = [0]

        def count(*_: Any) -> None:
            seen[0] += 1

        sa.event.listen(engine, "before_cursor_execute", count)
        db = app.state.db
        raw = db.raw

        @contextlib.asynccontextmanager
        async def counted_raw() -> Any:
            async with raw() as connection:
                yield CountedConnection(connection, count)

        db.raw = counted_raw
        headers = {INTERNAL_TOKEN_HEADER: sign_internal_token(agent, settings)}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://feedback", headers=headers) as client:
            (await client.get(paths[0])).raise_for_status()  # warm-up: the agent joins the rotation once
            for path in paths:
                seen[0] = 0
                (await client.get(path)).raise_for_status()
                counts.append(seen[0])
        sa.event.remove(engine, "before_cursor_execute", count)
    return counts


class CountedConnection:
    """A read-pool connection that counts the statements sent through it."""

    def __init__(self, connection: Any, count: Any) -> None:
        self._connection, self._count = connection, count

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._connection, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):

            async def counted(*args: Any, **kwargs: Any) -> Any:
                self._count()
                return await attribute(*args, **kwargs)

            return counted
        return attribute


def bench_listing(stack: Stack, args: argparse.Namespace, report: BenchReport) -> None:
    community, now = uuid.uuid4(), datetime.now(UTC)
    future = now + timedelta(days=30)
    records = [
        ticket_record(
            community,
            now,
            now - timedelta(seconds=i * 97),
            random.choice(("open", "open", "new", "pending", "resolved")),
            random.choice(("complaint", "question")),
            future,
        )
        for i in range(LISTED)
    ]
    asyncio.run(seed_tickets(stack.dsn("feedback"), records))
    matching = sum(1 for r in records if r[7] == "open" and r[5] == "complaint")
    email, password = f"agent-{secrets.token_hex(3)}@qunyun.local", secrets.token_urlsafe(18)
    body = {"email": email, "display_name": "Bench Agent", "password": password, "roles": ["agent"]}
    stack.post("/v1/staff", body, stack.admin_headers)
    headers, agent = login(stack.gateway.url, email, password)
    query = f"/v1/tickets?community_id={community}&status=open&category=complaint&limit=25"
    cursor, page = None, 1
    with httpx.Client(base_url=stack.gateway.url, headers=headers, timeout=30) as client:
        while page < args.deep_page:
            answer = client.get(query + (f"&cursor={cursor}" if cursor else "")).raise_for_status().json()
            if answer["next_cursor"] is None:
                break
            cursor, page = answer["next_cursor"], page + 1
    args.deep_page = page
    deep = f"{query}&cursor={cursor}"
    statements = asyncio.run(statements_per_request(stack, [query, deep], agent))
    report.add(
        f"listing: 25 of {LISTED:,} tickets ({matching:,} match community_id, status=open, category=complaint), "
        f"agent JWT via gateway, {args.loaders} loaders x {args.concurrency}"
    )
    report.add(f"  statements per request: page 1 {statements[0]}, page {args.deep_page} {statements[1]}")
    same = statements[0] == statements[1]
    report.add(f"listing: same statements on page 1 and page {args.deep_page} [{'ok' if same else 'NO'}]", met=same)
    for name, path in (("page 1", query), (f"page {args.deep_page}", deep)):
        figures = measured(stack.meter(), stack.gateway.url + path, headers, args)
        report.add(
            f"  {name}: {figures['rps']:,.0f} req/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
            f"statuses {figures['statuses']}, load average {figures['load_average']:.1f}"
        )
        report.add(cpu_line(figures["cpu_us"], "request"))
        target_line(report, f"listing {name}", figures["rps"], LISTINGS_PER_SECOND, "req/s")


# --- 2. creation -----------------------------------------------------------------------------


def bench_creation(stack: Stack, args: argparse.Namespace, report: BenchReport) -> None:
    key = stack.post("/v1/api-keys", {"name": "bench tickets", "scopes": ["tickets:write"]}, stack.admin_headers)
    headers = {"X-API-Key": key["key"]}
    community = uuid.uuid4()
    body = {
        "member_id": str(uuid.uuid4()),
        "community_id": str(community),
        "subject": "Order missing",
        "body": "My tea never arrived.",
        "category": "complaint",
        "priority": "high",
    }
    figures = measured(
        stack.meter(), f"{stack.gateway.url}/v1/tickets", headers, args, method="POST", body=json.dumps(body)
    )

    async def stored() -> int:
        connection = await asyncpg.connect(stack.dsn("feedback"))
        try:
            count: int = await connection.fetchval("SELECT count(*) FROM tickets WHERE community_id = $1", community)
        finally:
            await connection.close()
        return count

    created = asyncio.run(stored())
    report.add(f"creation: POST /v1/tickets, partner API key via gateway, {args.loaders} loaders x {args.concurrency}")
    report.add(
        f"  {figures['rps']:,.0f} tickets/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"statuses {figures['statuses']}, {created:,} stored, load average {figures['load_average']:.1f}"
    )
    report.add(cpu_line(figures["cpu_us"], "ticket"))
    target_line(report, "creation", figures["rps"], TICKETS_PER_SECOND, "tickets/s")


# --- 3. the SLA job --------------------------------------------------------------------------


def bench_sla(stack: Stack, args: argparse.Namespace, report: BenchReport) -> None:
    dsn = stack.dsn("feedback")

    async def sql(statement: str) -> Any:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchrow(statement)
        finally:
            await connection.close()

    async def breaches_until_done() -> tuple[int, float]:
        """Seed the due tickets (one commit), then poll (one connection) until all are announced."""
        await seed_tickets(dsn, records, analyze=False)
        started = time.perf_counter()
        connection = await asyncpg.connect(dsn)
        try:
            while True:
                done: int = await connection.fetchval(
                    "SELECT count(*) FROM outbox WHERE type = 'feedback.sla_breached'"
                )
                elapsed = time.perf_counter() - started
                if done >= SLA_TICKETS or elapsed > 3 * SLA_SECONDS:
                    return done, elapsed
                await asyncio.sleep(0.05)
        finally:
            await connection.close()

    asyncio.run(sql("TRUNCATE outbox CASCADE"))  # parts 1-2's events: not the replicas' relays' work
    env = stack.env | {"QUNYUN_RELAY_ENABLED": "true"}
    ports = [free_port(), free_port()]
    with (
        run_uvicorn("services.feedback.app:create_app", ports[0], env) as one,
        run_uvicorn("services.feedback.app:create_app", ports[1], env) as two,
    ):
        now = datetime.now(UTC)
        community = uuid.uuid4()
        records = [
            ticket_record(community, now, now - timedelta(hours=2), "open", "complaint", now - timedelta(minutes=1))
            for _ in range(SLA_TICKETS)
        ]
        meter = stack.meter(**{"feedback replica 1": one.pid, "feedback replica 2": two.pid})
        with meter.measure() as used:
            _, elapsed = asyncio.run(breaches_until_done())
    figures = asyncio.run(
        sql(
            "SELECT count(*) AS events, count(DISTINCT data->>'ticket_id') AS tickets, "
            "(SELECT count(*) FROM tickets WHERE breached AND resolution_breach_due_at IS NOT NULL) AS marked "
            "FROM outbox WHERE type = 'feedback.sla_breached'"
        )
    )
    cpu = {part: seconds / SLA_TICKETS * 1e6 for part, seconds in used.items() if part != "load_average"}
    report.add(f"SLA job: {SLA_TICKETS:,} tickets due at once, two feedback replicas (jobs and relay on)")
    report.add(
        f"  {figures['events']:,} feedback.sla_breached events for {figures['tickets']:,} tickets "
        f"({figures['marked']:,} marked) in {elapsed:.2f} s, load average {used['load_average']:.1f}"
    )
    report.add(cpu_line(cpu, "breach"))
    once = figures["events"] == figures["tickets"] == SLA_TICKETS
    met = once and elapsed <= SLA_SECONDS
    report.add(
        f"SLA job: {SLA_TICKETS:,} breaches in {elapsed:.2f} s, {'exactly once' if once else 'NOT exactly once'} "
        f"[{'ok' if met else 'BELOW TARGET'}] (target <= {SLA_SECONDS:g} s, exactly once)",
        met=met,
    )


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one load run")
    parser.add_argument("--loaders", type=int, default=2, help="load generator processes")
    parser.add_argument("--concurrency", type=int, default=24, help="requests in flight per loader")
    parser.add_argument("--deep-page", type=int, default=60)
    parser.add_argument("--only", nargs="+", default=["listing", "creation", "sla"])
    args = parser.parse_args(argv)
    report = BenchReport()
    with running_stack(db_pool=14) as stack:
        if "listing" in args.only:
            bench_listing(stack, args, report)
        if "creation" in args.only:
            bench_creation(stack, args, report)
        if "sla" in args.only:
            bench_sla(stack, args, report)
    return report


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
