"""The members relay delivering ingested `activity.recorded` events to its subscribers.

    python -m tests.bench.members_relay [--batches 20]

Records `--batches` batches of 1000 events with the ingest code on a temporary Postgres
database, then lets the relay deliver them to every subscriber of `activity.recorded`
(an in-process peer that answers 200, so only the relay's side is measured) and prints
the CPU of this process and of the Postgres backends per event delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.common.db import Database
from services.common.events import Outbox, Relay
from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.problems import ProblemError
from services.common.settings import Settings
from services.members.activity import service
from services.members.activity.schemas import ActivityCreate
from services.members.db import kit_tables
from tests.bench._harness import BenchReport, cpu_seconds, run_standalone
from tests.pg import pg_url


async def run(batches: int) -> str:
    settings = Settings(database_url=pg_url(f"qunyun_bench_relay_{uuid.uuid4().hex[:6]}_{{service}}"))
    url = settings.database_url_for("members")
    await ensure_database(url)
    await upgrade("members", url)
    raw = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        community, now = uuid.uuid4(), datetime.now(UTC)
        await raw.execute(
            "INSERT INTO communities (id, name, description, timezone, created_at, updated_at)"
            " VALUES ($1, 'c', '', 'Asia/Shanghai', $2, $2)",
            community,
            now,
        )
        members = [uuid.uuid4() for _ in range(1000)]
        await raw.executemany(
            "INSERT INTO members (id, display_name, tags, attributes, consent_marketing, joined_at, created_at,"
            " updated_at) VALUES ($1, 'm', '[]', '{}', false, $2, $2, $2)",
            [(m, now) for m in members],
        )
        outbox = Outbox(kit_tables, "members", settings)
        db = Database(url, settings, info={"outbox": outbox})
        posted = 0

        def answer(request: httpx.Request) -> httpx.Response:
            nonlocal posted
            posted += len(json.loads(request.content)["events"])
            return httpx.Response(200, json={"applied": 0, "duplicates": 0})

        start = now - timedelta(days=2)
        for b in range(batches):
            items: list[ActivityCreate | ProblemError] = [
                ActivityCreate(
                    id=uuid.uuid4(),
                    member_id=members[i],
                    community_id=community,
                    type="check_in",
                    occurred_at=start + timedelta(seconds=b * 1000 + i),
                    properties={"n": i},
                )
                for i in range(1000)
            ]
            async with db.session() as session:
                await service.record_activities(session, items)
                await session.commit()
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            relay = Relay(db, outbox, settings, client)
            warm = await relay.deliver_all_once()  # opens the pool's connections
            backends = [
                r[0]
                for r in await raw.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
            mine, theirs = cpu_seconds(os.getpid()), sum(cpu_seconds(p) for p in backends)
            delivered = await relay.drain(max_passes=10_000)
            mine, theirs = cpu_seconds(os.getpid()) - mine, sum(cpu_seconds(p) for p in backends) - theirs
        await db.dispose()
        n = max(1, delivered)
        return (
            f"members relay: {warm + delivered} deliveries of {batches * 1000} events ({posted} posted);"
            f" CPU per delivery: relay process {mine / n * 1e6:.1f} us, postgres {theirs / n * 1e6:.1f} us"
        )
    finally:
        await raw.close()
        await drop_database(url)


def run_bench(argv: list[str] | None = None) -> BenchReport:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    report = BenchReport()
    report.add(asyncio.run(run(args.batches)))  # no target of its own: what ingest costs its relay
    return report


if __name__ == "__main__":
    sys.exit(run_standalone(run_bench))
