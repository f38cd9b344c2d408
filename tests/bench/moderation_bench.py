"""Moderation benchmark: `python -m tests.bench.moderation_bench [--reports 1000]`.

The whole system runs in-process on fresh, migrated Postgres databases (dropped at the end).

1. The queue: `--reports` open reports (4 per reported member, seeded with moderation's
   own typed functions) are resolved through the gateway by an agent with a real token,
   `--concurrency` at a time, every other one upheld (a strike, and the ladder's warning,
   mute or ban with its event). Prints reports resolved/s and the latency p50/p99.
2. The unmute job: `--mutes` mutes end at spread-out instants over the next few seconds;
   two replicas of the expiry job (two job runners, two engines on the one database) run
   on the scheduler interval. Prints the latency from a mute's `until` to its
   `moderation.sanction_lifted` being committed (p50/p99/max) and checks each mute was
   announced exactly once.

Targets: every report resolved (200) and nothing left open; every mute lifted exactly
once; unmute latency p99 below the scheduler interval + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from services.common.db import Database, utcnow
from services.common.settings import SERVICES, Settings
from services.feedback.db import kit_tables
from services.feedback.moderation.membership.service import record_join
from services.feedback.moderation.reports.service import FILINGS, REPORTS
from services.feedback.moderation.rules.schemas import RuleItem, RulesUpdate
from services.feedback.moderation.rules.service import put_rules
from services.feedback.moderation.sanctions.expiry import sanction_expiry_job
from services.feedback.moderation.sanctions.service import SANCTIONS
from tests.bench._harness import BenchReport, load_average, run_standalone, temporary_databases
from tests.system import System, staff, test_settings

AGENT = staff("agent")
OPERATOR = staff("operator")
SPREAD_SECONDS = 4.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def seed_queue(system: System, community_id: uuid.UUID, reports: int) -> list[uuid.UUID]:
    """Memberships, rules (moderation's own functions) and `reports` open reports, 4 per
    reported member, written in bulk (the seed is not what is measured)."""
    db = system.state("feedback").db
    reported = [uuid.uuid4() for _ in range(max(1, reports // 4))]
    now = utcnow()
    ids = [uuid.uuid4() for _ in range(reports)]
    async with db.session() as session:
        for member_id in reported:
            await record_join(session, community_id, member_id, now)
        rule = RuleItem(code="no-spam", title="No spam", description="", severity="minor")
        await put_rules(session, community_id, RulesUpdate(items=[rule]), OPERATOR, now)
        await session.execute(
            sa.insert(REPORTS),
            [
                {
                    "id": report_id,
                    "community_id": community_id,
                    "reported_member_id": reported[n // 4],
                    "rule_code": "no-spam",
                    "status": "open",
                    "reporter_count": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, report_id in enumerate(ids)
            ],
        )
        await session.execute(
            sa.insert(FILINGS),
            [
                {
                    "report_id": report_id,
                    "reporter_id": f"member:{reporter}",
                    "reporter_member_id": reporter,
                    "filed_by": f"member:{reporter}",
                    "evidence": {"text": "spam"},
                    "created_at": now,
                }
                for report_id in ids
                for reporter in [uuid.uuid4()]
            ],
        )
        await db.commit(session)
    return ids


async def resolve_all(system: System, ids: list[uuid.UUID], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    queue = list(enumerate(ids))
    random.shuffle(queue)  # agents work different members' reports side by side
    async with await system.client(AGENT) as client:

        async def worker() -> None:
            while queue:
                n, report_id = queue.pop()
                body = {"decision": "uphold" if n % 2 == 0 else "dismiss", "note": "bench"}
                started = time.perf_counter()
                response = await client.post(f"/v1/reports/{report_id}/resolve", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)

        await client.get("/v1/reports", params={"limit": 1})  # warm the token caches
        started = time.perf_counter()
        cpu = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    async with system.state("feedback").db.session() as session:
        still_open = await session.scalar(sa.select(sa.func.count()).where(REPORTS.c.status == "open"))
        sanctions = await session.scalar(sa.select(sa.func.count()).select_from(SANCTIONS))
    return {
        "rps": len(ids) / elapsed,
        "elapsed": elapsed,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "ok": statuses.count(200),
        "open": int(still_open or 0),
        "sanctions": int(sanctions or 0),
        "cpu_ms": cpu * 1000 / len(ids),
    }


async def unmute_latency(system: System, community_id: uuid.UUID, mutes: int) -> dict[str, Any]:
    feedback = system.state("feedback")
    db = feedback.db
    member_id = uuid.uuid4()
    now = utcnow()
    ids = [uuid.uuid4() for _ in range(mutes)]
    async with db.session() as session:  # written in bulk: the seed is not what is measured
        await session.execute(
            sa.insert(SANCTIONS),
            [
                {
                    "id": sid,
                    "community_id": community_id,
                    "member_id": member_id,
                    "action": "mute",
                    "rule_code": "no-spam",
                    "created_by": "bench",
                    "created_at": now,
                    "until": now + timedelta(hours=1),
                    "status": "active",
                }
                for sid in ids
            ],
        )
        await db.commit(session)
    # The mutes end at spread-out instants a little ahead, so the job meets them as they fall due.
    start = utcnow() + timedelta(seconds=0.5)
    ends = {sid: start + timedelta(seconds=random.uniform(0, SPREAD_SECONDS)) for sid in ids}
    async with db.session() as session:
        await session.execute(
            SANCTIONS.update().where(SANCTIONS.c.id == sa.bindparam("sid")).values(until=sa.bindparam("until")),
            [{"sid": sid, "until": until} for sid, until in ends.items()],
        )
        await db.commit(session)
    settings = system.settings
    replicas = [Database(db.url, settings, info={"outbox": feedback.outbox}) for _ in range(2)]
    jobs = [sanction_expiry_job(replica, settings) for replica in replicas]
    for job in jobs:
        job.start()
    outbox = kit_tables.outbox
    lifted: list[Any] = []
    deadline = time.monotonic() + SPREAD_SECONDS + 10
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            async with db.session() as session:
                lifted = (
                    await session.execute(
                        sa.select(outbox.c.data, outbox.c.occurred_at).where(
                            outbox.c.type == "moderation.sanction_lifted"
                        )
                    )
                ).all()
            if len(lifted) >= mutes:
                break
    finally:
        for job in jobs:
            await job.stop()
        for replica in replicas:
            await replica.dispose()
    announced = [uuid.UUID(row.data["sanction_id"]) for row in lifted]
    latencies = [(row.occurred_at - ends[uuid.UUID(row.data["sanction_id"])]).total_seconds() * 1000 for row in lifted]
    return {
        "lifted": len(set(announced)),
        "duplicates": len(announced) - len(set(announced)),
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"),
        "interval_ms": settings.scheduler_interval_ms,
    }


async def bench(args: argparse.Namespace, template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    urls = {name: Settings(database_url=template).database_url_for(name) for name in SERVICES}
    system = System(test_settings(urls, log_level="ERROR", scheduler_interval_ms=args.interval_ms))
    await system.start()
    try:
        community_id = uuid.uuid4()
        seeded = time.perf_counter()
        ids = await seed_queue(system, community_id, args.reports)
        seconds = time.perf_counter() - seeded
        queue = await resolve_all(system, ids, args.concurrency)
        queue["seed_seconds"] = seconds
        unmute = await unmute_latency(system, community_id, args.mutes)
    finally:
        await system.stop()
    return queue, unmute


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mutes", type=int, default=500)
    parser.add_argument("--interval-ms", type=int, default=1000, help="the expiry job's scheduler interval")
    args = parser.parse_args(argv)
    with temporary_databases(SERVICES) as template:
        queue, unmute = asyncio.run(bench(args, template))

    report = BenchReport()
    report.add(
        f"resolve {args.reports} queued reports through the gateway (agent token), {args.concurrency} concurrent, "
        f"half upheld (strike + ladder sanction + events); queue seeded in {queue['seed_seconds']:.1f} s; "
        f"load avg {load_average():.1f}"
    )
    report.add(
        f"  {queue['rps']:,.0f} reports/s ({queue['elapsed']:.1f} s), latency p50 {queue['p50']:.1f} ms, "
        f"p99 {queue['p99']:.1f} ms, {queue['cpu_ms']:.1f} ms CPU per report (all five apps, one process); "
        f"{queue['ok']} answered 200, {queue['open']} left open, {queue['sanctions']} sanctions applied",
        met=queue["ok"] == args.reports and queue["open"] == 0,
    )
    report.add(
        f"unmute job: {args.mutes} mutes ending over {SPREAD_SECONDS:g} s, two job replicas, "
        f"interval {unmute['interval_ms']} ms"
    )
    report.add(
        f"  until -> sanction_lifted committed: p50 {unmute['p50']:.0f} ms, p99 {unmute['p99']:.0f} ms, "
        f"max {unmute['max']:.0f} ms; {unmute['lifted']} lifted, {unmute['duplicates']} announced twice",
        met=unmute["lifted"] == args.mutes
        and unmute["duplicates"] == 0
        and unmute["p99"] < unmute["interval_ms"] + 1000,
    )
    return report


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
