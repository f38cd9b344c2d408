"""Activity ingest throughput: POST /v1/events/batch against the members app on real uvicorn.

    python -m tests.bench.members_ingest [--events 200000] [--batch 1000] [--concurrency 4]

Creates a scratch Postgres database, migrates it, starts `uvicorn` with the members app
in a child process (relay off: nothing to deliver to), creates a community and members,
then posts pre-serialized batches from this process with an internal token and prints
events/s. The database and the server are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import Settings
from tests.system import PG_SERVER


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if server.poll() is not None:
            raise RuntimeError("uvicorn exited early")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("uvicorn did not become ready")


def batches(community_id: str, member_ids: list[str], total: int, size: int) -> list[bytes]:
    """Pre-serialized bodies, so the client spends its time sending, not building JSON."""
    start = datetime.now(UTC) - timedelta(days=20)
    bodies = []
    for b in range(total // size):
        events = [
            {
                "id": str(uuid.uuid4()),
                "member_id": member_ids[(b * size + i) % len(member_ids)],
                "community_id": community_id,
                "type": "message_sent" if i % 3 else "check_in",
                "occurred_at": (start + timedelta(seconds=(b * size + i) * 7)).isoformat(),
                "properties": {"channel": "wechat", "n": i},
            }
            for i in range(size)
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


async def run(total: int, size: int, concurrency: int, members: int) -> None:
    url = f"{PG_SERVER}/qunyun_bench_{secrets.token_hex(4)}_{{service}}"
    settings = Settings(env="test", database_url=url, relay_enabled=False, log_level="WARNING")
    db_url = settings.database_url_for("members")
    await ensure_database(db_url)
    await upgrade("members", db_url)
    port = free_port()
    env = {**os.environ, "QUNYUN_ENV": "test", "QUNYUN_DATABASE_URL": url, "QUNYUN_RELAY_ENABLED": "false"}
    env |= {"QUNYUN_LOG_LEVEL": "WARNING", "QUNYUN_DB_POOL_SIZE": str(concurrency + 2)}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "services.members.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
        ],
        env=env,
    )
    try:
        token = sign_internal_token(Identity(kind="partner", id="bench", scopes=("events:write",)), settings)
        operator = sign_internal_token(Identity(kind="staff", id="bench-op", roles=("operator",)), settings)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as client:
            await wait_ready(client, server)
            staff_headers = {INTERNAL_TOKEN_HEADER: operator}
            community = await client.post("/v1/communities", json={"name": "bench"}, headers=staff_headers)
            community_id = community.json()["id"]
            member_ids = []
            for i in range(members):
                created = await client.post(
                    "/v1/members", json={"external_id": f"bench-{i}", "display_name": f"m{i}"}, headers=staff_headers
                )
                member_ids.append(created.json()["id"])
            bodies = batches(community_id, member_ids, total, size)
            headers = {INTERNAL_TOKEN_HEADER: token, "Content-Type": "application/json"}
            # Warm up (connection pools, prepared statements) before timing.
            warm = batches(community_id, member_ids, size * concurrency, size)
            await asyncio.gather(*(client.post("/v1/events/batch", content=b, headers=headers) for b in warm))
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)
            accepted = 0

            async def worker() -> None:
                nonlocal accepted
                while not queue.empty():
                    body = queue.get_nowait()
                    # Tokens live 60 s: sign a fresh one per request (cheap next to a 1000-event batch).
                    headers[INTERNAL_TOKEN_HEADER] = sign_internal_token(
                        Identity(kind="partner", id="bench", scopes=("events:write",)), settings
                    )
                    response = await client.post("/v1/events/batch", content=body, headers=headers)
                    response.raise_for_status()
                    accepted += response.json()["accepted"]

            began, cpu_began = time.perf_counter(), cpu_seconds(server.pid)
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed, cpu = time.perf_counter() - began, cpu_seconds(server.pid) - cpu_began
        print(
            f"members ingest: {accepted} events in {elapsed:.2f} s = {accepted / elapsed:,.0f} events/s "
            f"(batches of {size}, {concurrency} concurrent, {members} members, Postgres)"
        )
        # On a shared machine wall time mostly measures the neighbours; CPU time measures us.
        print(
            f"server process CPU: {cpu:.2f} s = {accepted / cpu:,.0f} events per CPU-second "
            f"({cpu / max(accepted, 1) * 1e6:.0f} us per event); load average {os.getloadavg()[0]:.1f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        await drop_database(db_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.batch, args.concurrency, args.members))


if __name__ == "__main__":
    main()
