"""For the console's browser test: a community with a history, and the gateway on a real port.

`seed_console_community` builds, through the public API, what the console draws: members
who joined over the last weeks (retention cohorts), their check-ins at local hours over the
last five weeks (engagement, the heat map, best times; some stopped, so churn risk), the
points those earned and one redemption, a scheduled post, and tickets (one answered,
resolved and rated, one still open). `serve_http` puts the in-process gateway, wired to
the in-process services, behind a uvicorn server on 127.0.0.1, so a browser can load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from fastapi import FastAPI

from tests.gateway_auth import STAFF_PASSWORD, ensure_staff_row
from tests.system import System, partner, staff

ZONE = "Asia/Shanghai"
# Local hours members are busy at: mornings and evenings (the heat map's bright cells).
BUSY_HOURS = (8, 9, 12, 19, 20, 21)


@dataclass(frozen=True)
class SeededCommunity:
    community_id: str
    member_ids: list[str]
    admin_email: str
    admin_password: str


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def expect(response: httpx.Response, status: int) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else {}


async def seed_console_community(system: System, name: str = "Tea lovers") -> SeededCommunity:
    rng = random.Random(20261121)
    now = datetime.now(UTC)
    local_now = now.astimezone(ZoneInfo(ZONE))
    admin_identity = staff("admin")
    account = await ensure_staff_row(system, admin_identity)
    async with (
        await system.client(admin_identity) as admin,
        await system.client(partner("members:write", "members:token", "events:write", "read")) as bot,
    ):
        community = await expect(
            await admin.post("/v1/communities", json={"name": name, "description": "Oolong", "timezone": ZONE}), 201
        )
        community_id = community["id"]
        member_ids: list[str] = []
        events: list[dict[str, object]] = []
        for n in range(12):
            joined = now - timedelta(days=7 * (n % 6) + 1, hours=n)
            created = await expect(
                await bot.post(
                    "/v1/members",
                    json={"external_id": f"wx-{n:04d}", "display_name": f"Member {n}", "joined_at": stamp(joined)},
                ),
                201,
            )
            member_id = created["id"]
            member_ids.append(member_id)
            await expect(
                await bot.post(
                    f"/v1/communities/{community_id}/members",
                    json={"member_id": member_id, "joined_at": stamp(joined)},
                ),
                201,
            )
            # A third of the members stopped two weeks ago: the churn-risk list.
            quiet_since = 14 if n % 3 == 0 else 0
            for days_ago in range(quiet_since, min(35, (now - joined).days + 1)):
                if rng.random() < 0.55:
                    continue
                day = (local_now - timedelta(days=days_ago)).replace(minute=0, second=0, microsecond=0)
                at = day.replace(hour=rng.choice(BUSY_HOURS), minute=rng.randrange(60))
                if at >= local_now:
                    at = local_now - timedelta(minutes=5)
                for kind in ("check_in", "message_sent") if rng.random() < 0.4 else ("check_in",):
                    events.append(
                        {
                            "id": str(uuid.uuid4()),
                            "member_id": member_id,
                            "community_id": community_id,
                            "type": kind,
                            "occurred_at": stamp(at),
                        }
                    )
        for start in range(0, len(events), 1000):
            batch = await expect(await bot.post("/v1/events/batch", json={"events": events[start : start + 1000]}), 200)
            assert batch["rejected"] == [], batch
        await system.drain()

        # Points spent: a member redeems a reward with what check-ins earned.
        reward = await expect(await admin.post("/v1/rewards", json={"name": "Tea cup", "cost": 10, "stock": 5}), 201)
        spender = member_ids[1]
        token = await expect(await bot.post("/v1/auth/member-token", json={"member_id": spender}), 200)
        async with system.anonymous() as member:
            member.headers["Authorization"] = f"Bearer {token['access_token']}"
            await expect(
                await member.post(
                    "/v1/redemptions",
                    json={"reward_id": reward["id"]},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                ),
                201,
            )
            # Support: one ticket answered, resolved and rated; one still waiting.
            answered = await expect(
                await member.post(
                    "/v1/tickets",
                    json={
                        "subject": "Points missing",
                        "body": "My check-in gave nothing",
                        "community_id": community_id,
                    },
                ),
                201,
            )
            await expect(
                await admin.post(f"/v1/tickets/{answered['id']}/comments", json={"body": "Fixed, sorry!"}), 201
            )
            await expect(await admin.post(f"/v1/tickets/{answered['id']}/resolve"), 200)
            await expect(
                await member.post(f"/v1/tickets/{answered['id']}/satisfaction", json={"rating": 4, "comment": "ok"}),
                201,
            )
            await expect(
                await member.post(
                    "/v1/tickets",
                    json={"subject": "Cup not sent", "body": "Where is my cup?", "community_id": community_id},
                ),
                201,
            )

        # Content: a post drafted, approved and scheduled for tomorrow morning.
        post = await expect(
            await admin.post(
                "/v1/posts",
                json={"community_id": community_id, "title": "Autumn tasting", "body": "Join us", "kind": "activity"},
            ),
            201,
        )
        await expect(await admin.post(f"/v1/posts/{post['id']}/submit"), 200)
        await expect(await admin.post(f"/v1/posts/{post['id']}/approve"), 200)
        tomorrow = (local_now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
        await expect(await admin.post(f"/v1/posts/{post['id']}/schedule", json={"publish_at": stamp(tomorrow)}), 200)
        await system.drain()
    return SeededCommunity(community_id, member_ids, account.email, STAFF_PASSWORD)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield  # the test runner owns the process's signals


@contextlib.asynccontextmanager
async def serve_http(app: FastAPI) -> AsyncIterator[str]:
    """`app` (already started) served over HTTP on a free loopback port: its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
