"""A community with a little of everything, made through the gateway, for the composed views'
tests: a member who checks in, earns and redeems points, files a ticket and gets a touch;
a scheduled post; and a transport that makes one service fail or hang."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.content.factories import approved_post, schedule, z
from tests.system import System, member, staff

OPERATOR = staff("operator")
ANALYST = staff("analyst")
ADMIN = staff("admin")
AGENT = staff("agent")


@dataclass
class Seeded:
    community_id: str
    member_id: str
    ticket_id: str


async def seed(system: System) -> Seeded:
    """One community and member with activity, points, a redemption, a ticket, a survey permit, a scheduled post."""
    async with await system.client(OPERATOR) as op:
        community = await op.post("/v1/communities", json={"name": f"c-{uuid.uuid4().hex[:8]}"})
        assert community.status_code == 201, community.text
        community_id = community.json()["id"]
        created = await op.post(
            "/v1/members",
            json={
                "external_id": f"x-{uuid.uuid4().hex[:10]}",
                "display_name": "Mei",
                "email": "mei@example.com",
                "phone": "+8613800138000",
                "consent": {"marketing": True},
            },
        )
        assert created.status_code == 201, created.text
        member_id = created.json()["id"]
        joined = await op.post(f"/v1/communities/{community_id}/members", json={"member_id": member_id})
        assert joined.status_code == 201, joined.text
        reward = await op.post("/v1/rewards", json={"name": "Mug", "cost": 20, "stock": 5})
        assert reward.status_code == 201, reward.text
        gift = await op.post(
            "/v1/points/adjustments",
            json={"member_id": member_id, "delta": 50, "reason": "welcome"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert gift.status_code == 201, gift.text
        # No quiet hours, so the survey's permit does not depend on the time of day.
        policy = await op.put(
            f"/v1/communities/{community_id}/publishing-policy",
            json={"quiet_hours": None, "max_promotions_per_day": 2, "min_gap_minutes": 60},
        )
        assert policy.status_code == 200, policy.text
        permit = await op.post(
            "/v1/contact-permits", json={"member_id": member_id, "community_id": community_id, "kind": "survey"}
        )
        assert permit.status_code == 201, permit.text
    async with await system.client(member(member_id)) as mei:
        now = datetime.now(UTC)
        for days_ago in (0, 1, 3):
            event = {
                "id": str(uuid.uuid4()),
                "community_id": community_id,
                "type": "check_in",
                "occurred_at": z(now - timedelta(days=days_ago)),
            }
            assert (await mei.post("/v1/events", json=event)).status_code == 202
        ticket = await mei.post(
            "/v1/tickets",
            json={
                "subject": "Cannot redeem",
                "body": "The mug will not redeem",
                "category": "bug",
                "priority": "high",
                "community_id": community_id,
            },
        )
        assert ticket.status_code == 201, ticket.text
        redeemed = await mei.post(
            "/v1/redemptions", json={"reward_id": reward.json()["id"]}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        assert redeemed.status_code == 201, redeemed.text
    post_id = await approved_post(system, community_id)
    noon = (datetime.now(UTC) + timedelta(days=2)).replace(hour=4, minute=0, second=0, microsecond=0)  # 12:00 local
    scheduled = await schedule(system, post_id, noon)
    assert scheduled.status_code == 200, scheduled.text
    await system.drain()
    return Seeded(community_id, member_id, ticket.json()["id"])


class Broken(httpx.AsyncBaseTransport):
    """A service that is down (connection refused) or frozen (never answers)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.hang:
            await asyncio.sleep(3600)
        raise httpx.ConnectError("connection refused", request=request)


class broken_service:
    """Within the block, the in-process system's `service` fails (or hangs) for every caller."""

    def __init__(self, system: System, service: str, *, hang: bool = False) -> None:
        self.system, self.service, self.hang = system, service, hang
        self.saved: Any = None

    def __enter__(self) -> None:
        self.saved = self.system.transport.apps[self.service]
        self.system.transport.apps[self.service] = Broken(self.hang)  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        self.system.transport.apps[self.service] = self.saved
