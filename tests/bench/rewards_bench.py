"""Rewards benchmark on Postgres against a real uvicorn process.

    python -m tests.bench.rewards_bench [--events 100000] [--workers 1]

1. Earning: batches of 500 `activity.recorded` events posted to `/internal/events` as
   the members relay does (one batch at a time, like one relay; `--posters` for more),
   turned into ledger entries, lots, caps, streaks, leaderboard rows and outbox events.
   Prints events/s and the lag (batch posted -> awards committed) p50/p99.
2. Redemptions under contention: many members (each with their own token) redeem one
   reward, the load coming from `--loaders` aiohttp processes; prints redemptions/s and
   the CPU per redemption of the server, its Postgres backends and the load generators,
   then sells a small stock out under the same load. Checks zero oversell, exactly the
   stock sold, every balance equal to its ledger sum and its lots, none negative.
3. Leaderboards over 1,000,000 members (seeded with COPY): GET latency p50/p99 with the
   caller's own rank.

It creates a scratch database and drops it at the end (`--keep-db` keeps it).
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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.common.identity import (
    INTERNAL_TOKEN_HEADER,
    SYSTEM,
    Identity,
    InternalTokenCache,
    sign_internal_token,
)
from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import Settings
from tests.bench._harness import BenchReport, anchor_beside, free_port, load

PG = os.environ.get("QUNYUN_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
TYPES = [
    "check_in",
    "message_sent",
    "message_sent",
    "message_sent",
    "post_liked",
    "content_shared",
    "poll_voted",
    "invite_accepted",
]
ZONE = "Asia/Shanghai"
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far, from /proc/<pid>/stat (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                queue.extend(int(child) for child in children.read().split())
        except OSError:
            pass
    return found


class CpuMeter:
    """CPU-seconds the rewards server and its Postgres backends spend during a phase, and the
    load average around it (the machine is shared: the load says how much it had to share)."""

    def __init__(self, server: Server, pg: asyncpg.Connection, database: str) -> None:
        self.server, self.pg, self.database = server, pg, database

    async def _backends(self) -> list[int]:
        rows = await self.pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.database
        )
        return [row["pid"] for row in rows]

    async def sample(self) -> tuple[dict[int, float], dict[int, float], float]:
        server = {pid: cpu_seconds(pid) for pid in process_tree(self.server.process.pid)}
        backends = {pid: cpu_seconds(pid) for pid in await self._backends()}
        return server, backends, os.getloadavg()[0]

    async def report(
        self,
        before: tuple[dict[int, float], dict[int, float], float],
        operations: int,
        what: str,
        extra: dict[str, float] | None = None,
    ) -> tuple[str, dict[str, float]]:
        """The CPU line (server, Postgres backends, and any `extra` processes: the load
        generators) per operation, and the seconds each spent."""
        after = await self.sample()
        # A process that appeared during the phase counts from zero; one that ended is lost
        # (the pools keep their connections, so that is rare).
        used = {
            "server": sum(cpu - before[0].get(pid, 0.0) for pid, cpu in after[0].items()),
            "postgres backends": sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items()),
        } | (extra or {})
        per = 1_000_000 / max(operations, 1)
        parts = ", ".join(f"{name} {seconds:.2f} s ({seconds * per:,.0f} us/{what})" for name, seconds in used.items())
        line = f"  cpu: {parts}; load average {before[2]:.2f} -> {after[2]:.2f} on {os.cpu_count()} cores"
        return line, used


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Server:
    """The rewards app in its own uvicorn process(es)."""

    def __init__(self, database_url: str, port: int, workers: int, profile: str = "") -> None:
        self.port, self.profile = port, profile
        env = os.environ | {
            "QUNYUN_ENV": "development",
            "QUNYUN_REWARDS_DATABASE_URL": database_url,
            "QUNYUN_RELAY_ENABLED": "false",  # rewards' own outbox piles up for the gateway: realistic writes
            "QUNYUN_LOG_LEVEL": "WARNING",
            # Postgres is shared (max_connections 100): at most 15 connections per worker, kept
            # open (overflow connections would be opened and closed again under this load).
            "QUNYUN_DB_POOL_SIZE": "15",
            "QUNYUN_DB_MAX_OVERFLOW": "0",
        }
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "services.rewards.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning", "--loop", "uvloop",
        ]  # fmt: skip
        if profile:
            # py-spy starts the server (attaching to a running one needs ptrace rights a
            # container may not give); its own CPU then counts as the server's.
            spy = Path(sys.executable).with_name("py-spy")
            command = [str(spy), "record", "--rate", "250", "--format", "raw", "-o", profile, "--", *command]
        self.process = subprocess.Popen(command, env=env)

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        for _ in range(200):
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("the rewards server did not start")

    def stop(self) -> None:
        if self.profile:  # py-spy writes its profile on SIGINT, then the server is stopped
            served = process_tree(self.process.pid)[1:]
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
            for pid in served:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def activity_event(member_id: uuid.UUID, community_id: uuid.UUID, today: date) -> dict[str, Any]:
    day = today - timedelta(days=random.randrange(3))
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(seconds=random.randrange(86400))
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "id": str(uuid.uuid4()),
        "type": "activity.recorded",
        "source": "members",
        "occurred_at": stamp,
        "data": {
            "activity_id": str(uuid.uuid4()),
            "member_id": str(member_id),
            "community_id": str(community_id),
            "type": random.choice(TYPES),
            "occurred_at": stamp,
            "local_date": day.isoformat(),
            "timezone": ZONE,
            "properties": {},
        },
    }


async def bench_events(
    base: str, settings: Settings, pg: asyncpg.Connection, args: argparse.Namespace, meter: CpuMeter
) -> None:
    members = [uuid.uuid4() for _ in range(args.members)]
    communities = [uuid.uuid4() for _ in range(10)]
    today = datetime.now(UTC).date()
    batches = [
        [activity_event(random.choice(members), random.choice(communities), today) for _ in range(args.batch)]
        for _ in range(args.events // args.batch)
    ]
    tokens = InternalTokenCache(settings)
    lags: list[float] = []
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        warm_up = {"events": batches[0][:10]}  # creates the program, fills caches
        await client.post("/internal/events", json=warm_up, headers={INTERNAL_TOKEN_HEADER: tokens.token_for(SYSTEM)})
        for batch in batches:
            queue.put_nowait(batch)

        async def poster() -> None:
            while not queue.empty():
                batch = queue.get_nowait()
                started = time.perf_counter()
                headers = {INTERNAL_TOKEN_HEADER: tokens.token_for(SYSTEM)}
                response = await client.post("/internal/events", json={"events": batch}, headers=headers)
                response.raise_for_status()
                lags.append(time.perf_counter() - started)

        before = await meter.sample()
        started = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(args.posters)))
        elapsed = time.perf_counter() - started
        cpu, _ = await meter.report(before, len(batches) * args.batch, "event")
    events = len(batches) * args.batch
    entries = await pg.fetchval("SELECT count(*) FROM ledger_entries WHERE reason LIKE 'earned:%'")
    unbalanced = await pg.fetchval(
        "SELECT count(*) FROM accounts a WHERE a.balance <> "
        "(SELECT coalesce(sum(delta), 0) FROM ledger_entries e WHERE e.member_id = a.member_id)"
    )
    print(f"earning: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s awarded end to end")
    lag = f"lag p50 {ms(statistics.median(lags))}, p99 {ms(percentile(lags, 99))}"
    print(f"  batch of {args.batch}, {args.posters} poster(s): {lag}")
    print(f"  {entries:,} earning entries, {unbalanced} accounts not equal to their ledger sum")
    print(cpu)
    rate, lag_p99 = events / elapsed, percentile(lags, 99)
    verdict(
        f"earning {rate:,.0f} events/s, lag p99 {ms(lag_p99)} (target >= 5,000/s, p99 < 1 s)",
        rate >= 5_000 and lag_p99 < 1.0 and unbalanced == 0,
    )


async def seed_rich_members(pg: asyncpg.Connection, count: int, points: int) -> list[uuid.UUID]:
    """Members with `points` each: account, lot and ledger entry, consistent, with COPY."""
    now = datetime.now(UTC)
    members = [uuid.uuid4() for _ in range(count)]
    await pg.copy_records_to_table(
        "accounts",
        records=[(m, points, points, 1, "Newcomer", 0, now, now) for m in members],
        columns=[
            "member_id",
            "balance",
            "lifetime",
            "last_seq",
            "level_name",
            "streak_days",
            "created_at",
            "updated_at",
        ],
    )
    await pg.copy_records_to_table(
        "lots",
        records=[(uuid.uuid4(), m, NEVER, points, points, now) for m in members],
        columns=["id", "member_id", "expires_at", "points", "remaining", "created_at"],
    )
    await pg.copy_records_to_table(
        "ledger_entries",
        records=[(uuid.uuid4(), m, 1, points, points, "adjustment", now) for m in members],
        columns=["id", "member_id", "seq", "delta", "balance_after", "reason", "created_at"],
    )
    return members


def member_headers_file(path: Path, members: list[uuid.UUID], settings: Settings) -> None:
    """Each member's own internal token, one JSON header object a line (the load generators
    take them in turn: every request acts for a member, as the gateway would sign it)."""
    tokens = InternalTokenCache(settings, max_entries=len(members) + 1)
    lines = [
        json.dumps(
            {
                INTERNAL_TOKEN_HEADER: tokens.token_for(
                    Identity(kind="member", id=str(m), roles=("member",), member_id=m)
                )
            }
        )
        for m in members
    ]
    path.write_text("\n".join(lines) + "\n")


async def redemption_checks(pg: asyncpg.Connection, reward_id: uuid.UUID, stock: int) -> dict[str, int]:
    """What must hold after any run: units taken = redemptions (no oversell), every balance
    equal to its ledger sum and to its open lots, no negative balance, every redemption's
    entry covered by exactly its cost in lot consumptions."""
    left = await pg.fetchval("SELECT sum(remaining) FROM reward_stock WHERE reward_id = $1", reward_id)
    redeemed = await pg.fetchval("SELECT count(*) FROM redemptions WHERE reward_id = $1", reward_id)
    unbalanced = await pg.fetchval(
        "SELECT count(*) FROM accounts a WHERE a.balance <> "
        "(SELECT coalesce(sum(delta), 0) FROM ledger_entries e WHERE e.member_id = a.member_id) "
        "OR a.balance <> (SELECT coalesce(sum(remaining), 0) FROM lots l WHERE l.member_id = a.member_id)"
    )
    negative = await pg.fetchval("SELECT count(*) FROM accounts WHERE balance < 0")
    uncovered = await pg.fetchval(
        "SELECT count(*) FROM redemptions r WHERE r.reward_id = $1 AND r.cost <> "
        "(SELECT coalesce(sum(points), 0) FROM lot_consumptions c WHERE c.entry_id = r.entry_id)",
        reward_id,
    )
    return {
        "left": int(left),
        "redeemed": int(redeemed),
        "oversold": int(redeemed - (stock - left)),
        "unbalanced": int(unbalanced),
        "negative": int(negative),
        "uncovered": int(uncovered),
    }


async def redemption_run(
    base: str, reward_id: str, headers_file: Path, seconds: float, args: argparse.Namespace, meter: CpuMeter
) -> tuple[dict[str, Any], str, dict[str, float]]:
    """`args.loaders` load processes POST /v1/redemptions for `seconds`, each request as the
    next member in the headers file; the figures, the CPU line and the CPU per answer."""
    before = await meter.sample()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = await asyncio.to_thread(
        load,
        f"{base}/v1/redemptions",
        {},
        concurrency=args.concurrency,
        seconds=seconds,
        processes=args.loaders,
        method="POST",
        body=json.dumps({"reward_id": reward_id}),
        headers_file=str(headers_file),
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    loaders = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    answered = max(1, figures["all_requests"])
    cpu, used = await meter.report(before, answered, "request", extra={"load generators": loaders})
    return figures, cpu, used


async def bench_redemptions(
    base: str, settings: Settings, pg: asyncpg.Connection, args: argparse.Namespace, meter: CpuMeter
) -> None:
    """1. Throughput: many members redeem one reward with stock to spare, from several load
    processes. 2. Sell-out: the same load on a reward with little stock: exactly its stock
    succeeds, the rest is out-of-stock. Both: no oversell, balances = ledger = lots."""
    members = await seed_rich_members(pg, args.redeemers, 10_000)
    operator = {
        INTERNAL_TOKEN_HEADER: sign_internal_token(Identity(kind="staff", id="bench", roles=("operator",)), settings)
    }
    with tempfile.TemporaryDirectory() as tmp:
        headers_file = Path(tmp) / "members.jsonl"
        member_headers_file(headers_file, members, settings)  # tokens live 60 s: enough for both runs
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            hot = (
                await client.post(
                    "/v1/rewards", json={"name": "Hot item", "cost": 10, "stock": args.stock}, headers=operator
                )
            ).json()
            scarce = (
                await client.post(
                    "/v1/rewards",
                    json={"name": "Flash item", "cost": 10, "stock": args.sellout_stock},
                    headers=operator,
                )
            ).json()
        figures, cpu, used = await redemption_run(base, hot["id"], headers_file, args.redeem_seconds, args, meter)
        checks = await redemption_checks(pg, uuid.UUID(hot["id"]), args.stock)
        succeeded = figures["statuses"].get("201", 0)
        rate = succeeded / figures["seconds"]
        print(
            f"redemptions: {figures['requests']} answered in {figures['seconds']:.1f} s by {args.loaders} load "
            f"processes x {args.concurrency // args.loaders} in flight = {figures['rps']:,.0f} requests/s; "
            f"{succeeded} succeeded ({rate:,.0f}/s); p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
        )
        print(f"  statuses {dict(sorted(figures['statuses'].items()))}, transport errors {figures['errors']}; {checks}")
        print(cpu)
        sold = await redemption_run(base, scarce["id"], headers_file, args.sellout_seconds, args, meter)
        sold_checks = await redemption_checks(pg, uuid.UUID(scarce["id"]), args.sellout_stock)
        sold_ok = set(sold[0]["statuses"]) <= {"201", "409"} and sold[0]["errors"] == 0
        print(
            f"  sell-out: stock {args.sellout_stock}, statuses {dict(sorted(sold[0]['statuses'].items()))} "
            f"(warm-up included in the checks); {sold_checks}"
        )
    server_us = used["server"] / max(1, figures["all_requests"]) * 1e6
    healthy = all(
        c["oversold"] == 0 and c["unbalanced"] == 0 and c["negative"] == 0 and c["uncovered"] == 0
        for c in (checks, sold_checks)
    )
    sold_out = sold_checks["left"] == 0 and sold_checks["redeemed"] == args.sellout_stock and sold_ok
    verdict(
        f"redemptions {rate:,.0f}/s succeeded, {server_us:,.0f} us server CPU each, oversold "
        f"{checks['oversold'] + sold_checks['oversold']}, sell-out exact: {sold_out} "
        "(target >= 1,000/s, <= 1,000 us, zero oversell)",
        rate >= 1_000 and server_us <= 1_000 and healthy and sold_out and figures["errors"] == 0,
    )


async def bench_leaderboard(
    base: str, settings: Settings, pg: asyncpg.Connection, args: argparse.Namespace, meter: CpuMeter
) -> None:
    community = uuid.uuid4()
    today = datetime.now(UTC).astimezone().date()
    starts = {"week": today - timedelta(days=today.weekday()), "month": today.replace(day=1), "all": date(1970, 1, 1)}
    members = [uuid.uuid4() for _ in range(args.board_members)]
    now = datetime.now(UTC)
    records = []
    for m in members:
        points = random.randrange(1, 5000)
        reached = now - timedelta(seconds=random.randrange(86400 * 30))
        records += [(community, period, start, m, points, reached) for period, start in starts.items()]
    await pg.copy_records_to_table(
        "period_points",
        records=records,
        columns=["community_id", "period", "period_start", "member_id", "points", "reached_at"],
    )
    # Copied rows bypass add_points, so build their histogram the way the migration backfills it.
    await pg.execute(
        "INSERT INTO period_points_counts (community_id, period, period_start, points, members) "
        "SELECT community_id, period, period_start, points, count(*) FROM period_points "
        "WHERE community_id = $1 AND points > 0 GROUP BY community_id, period, period_start, points",
        community,
    )
    await pg.execute("INSERT INTO communities (id, timezone, updated_at) VALUES ($1, 'UTC', now())", community)
    await pg.execute("VACUUM ANALYZE period_points")
    await pg.execute("VACUUM ANALYZE period_points_counts")
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        before = await meter.sample()
        for i in range(args.board_requests):
            m = random.choice(members)
            token = sign_internal_token(Identity(kind="member", id=str(m), roles=("member",), member_id=m), settings)
            period = ("week", "month", "all")[i % 3]
            started = time.perf_counter()
            response = await client.get(
                "/v1/leaderboards",
                params={"community_id": str(community), "period": period, "limit": 10},
                headers={INTERNAL_TOKEN_HEADER: token},
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.json()["me"]["rank"] is not None
        cpu, _ = await meter.report(before, args.board_requests, "request")
    print(
        f"leaderboard: {args.board_members:,} members, {args.board_requests} GETs (top 10 + caller's rank): "
        f"p50 {ms(statistics.median(latencies))}, p99 {ms(percentile(latencies, 99))}"
    )
    print(cpu)
    verdict(f"leaderboard p99 {ms(percentile(latencies, 99))} (target < 20 ms)", percentile(latencies, 99) < 0.020)


# The targets; each part records whether it met them, and the exit status says so.
VERDICTS: list[tuple[str, bool]] = []


def verdict(line: str, ok: bool) -> None:
    VERDICTS.append((line, ok))
    print(f"  {line} [{'ok' if ok else 'BELOW TARGET'}]")


async def main(args: argparse.Namespace) -> int:
    url = f"{PG}/qunyun_bench_rewards_{secrets.token_hex(4)}"
    await ensure_database(url)
    await upgrade("rewards", url)
    settings = Settings()
    # A free port unless one is given: a fixed one would let two runs at once measure one server.
    args.port = args.port or free_port()
    server = Server(url, args.port, args.workers, args.profile)
    pg = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        base = f"http://127.0.0.1:{args.port}"
        async with httpx.AsyncClient() as probe:
            await server.wait_ready(probe)
        print(
            f"rewards on {base} ({args.workers} uvicorn worker(s)), Postgres {await pg.fetchval('SHOW server_version')}"
        )
        meter = CpuMeter(server, pg, url.rsplit("/", 1)[1])
        if "events" in args.only:
            await bench_events(base, settings, pg, args, meter)
        if "redemptions" in args.only:
            await bench_redemptions(base, settings, pg, args, meter)
        if "leaderboard" in args.only:
            await bench_leaderboard(base, settings, pg, args, meter)
    finally:
        await pg.close()
        server.stop()
        if not args.keep_db:
            await drop_database(url)
    return 0 if all(ok for _, ok in VERDICTS) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--members", type=int, default=20_000, help="distinct members in the event stream")
    parser.add_argument("--posters", type=int, default=1, help="batches in flight at once (1 = one relay)")
    parser.add_argument("--redeemers", type=int, default=5_000)
    parser.add_argument("--redeem-seconds", type=float, default=10.0, help="length of the redemption run")
    parser.add_argument("--stock", type=int, default=1_000_000, help="the redemption run's stock (to spare)")
    parser.add_argument("--sellout-stock", type=int, default=500, help="the sell-out run's stock (runs out)")
    parser.add_argument("--sellout-seconds", type=float, default=3.0)
    parser.add_argument("--loaders", type=int, default=3, help="load generator processes for redemptions")
    parser.add_argument("--concurrency", type=int, default=48, help="redemptions in flight, over all loaders")
    parser.add_argument("--board-members", type=int, default=1_000_000)
    parser.add_argument("--board-requests", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--only", nargs="+", default=["events", "redemptions", "leaderboard"])
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--profile", default="", help="run the server under py-spy, collapsed stacks to this file")
    return parser.parse_args(argv)


def run_bench(argv: list[str] | None = None) -> BenchReport:
    """For run_all: the phases' target lines, each with the anchor app's figures beside it."""
    VERDICTS.clear()
    asyncio.run(main(parse_args(argv)))
    report = BenchReport()
    for line, ok in VERDICTS:
        report.add(f"{line} [{'ok' if ok else 'BELOW TARGET'}] {anchor_beside()}", met=ok)
    if not VERDICTS:
        report.add("no phase ran", met=False)
    return report


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
