"""The system as its users use it: DESIGN.md's flows end to end, through the gateway.

Every caller gets its credentials the way a real one does: the bootstrap admin (made by
`ensure_admin`, as `qunyun up` does) logs in with `POST /v1/auth/token`, creates partner
keys with `POST /v1/api-keys`, and partners mint member tokens with
`POST /v1/auth/member-token`. Events travel members -> relay -> rewards when the test
calls `system.drain()`, exactly as the relays do in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa

from services.common.identity import Identity
from services.gateway.auth.admin import ensure_admin
from services.rewards.points.service import ENTRIES
from tests.system import System

ADMIN_EMAIL = "admin@flows.qunyun.test"
ADMIN_PASSWORD = "flows-admin-password-1"
PARTNER_SCOPES = ["members:write", "members:token", "events:write", "read"]
PROBLEM = "application/problem+json"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with this status (and type, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status"} <= body.keys()
    if slug is not None:
        assert body["type"] == f"https://qunyun.dev/problems/{slug}", body
    return body


@dataclass
class People:
    """Callers of one test, each with credentials obtained through the public API."""

    system: System
    stack: AsyncExitStack
    admin: httpx.AsyncClient
    partner: httpx.AsyncClient
    community_id: str

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=self.system.transport, base_url="http://gateway", headers=headers)
        self.stack.push_async_callback(client.aclose)
        return client

    async def api_key(self, *scopes: str, name: str = "partner") -> tuple[str, str]:
        """A new partner key with these scopes, as the admin creates it: (key id, secret)."""
        answer = await self.admin.post("/v1/api-keys", json={"name": name, "scopes": list(scopes)})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return body["id"], body["key"]

    async def partner_client(self, *scopes: str) -> httpx.AsyncClient:
        _, key = await self.api_key(*scopes)
        return self.client({"X-API-Key": key})

    async def new_member(self, external_id: str | None = None, **fields: Any) -> str:
        """A member created by the partner and joined to the community: its id."""
        body = {"external_id": external_id or f"wx-{uuid.uuid4().hex[:12]}", "display_name": "Lin", **fields}
        created = await self.partner.post("/v1/members", json=body)
        assert created.status_code == 201, created.text
        member_id: str = created.json()["id"]
        joined = await self.partner.post(f"/v1/communities/{self.community_id}/members", json={"member_id": member_id})
        assert joined.status_code == 201, joined.text
        return member_id

    async def member_client(self, member_id: str | None = None, external_id: str | None = None) -> httpx.AsyncClient:
        """A client holding a member token the partner minted."""
        ref = {"member_id": member_id} if member_id else {"external_id": external_id}
        minted = await self.partner.post("/v1/auth/member-token", json=ref)
        assert minted.status_code == 200, minted.text
        assert minted.headers["cache-control"] == "no-store"
        return self.client({"Authorization": f"Bearer {minted.json()['access_token']}"})

    async def check_in(self, client: httpx.AsyncClient, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "community_id": self.community_id, "type": "check_in"}
        if at is not None:
            body["occurred_at"] = stamp(at)
        body.update(fields)
        answer = await client.post("/v1/events", json=body)
        assert answer.status_code == 202, answer.text
        return {**body, **answer.json()}

    async def give_points(self, member_id: str, points: int) -> None:
        answer = await self.admin.post(
            "/v1/points/adjustments",
            json={"member_id": member_id, "delta": points, "reason": "welcome gift"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 201, answer.text

    async def points(self, client: httpx.AsyncClient, member_id: str) -> dict[str, Any]:
        answer = await client.get(f"/v1/members/{member_id}/points")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def admin_login(system: System, client: httpx.AsyncClient) -> str:
    """The bootstrap admin (as `qunyun up` ensures it) logs in: its access token."""
    db = system.state("gateway").db
    async with db.session() as session:
        await ensure_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
        await db.commit(session)
    answer = await client.post("/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["refresh_token"]
    return str(tokens["access_token"])


async def people_of(system: System) -> AsyncIterator[People]:
    """The admin logged in, a partner key with the usual scopes, and a community."""
    async with AsyncExitStack() as stack:
        anonymous = await stack.enter_async_context(system.anonymous())
        token = await admin_login(system, anonymous)
        admin = await stack.enter_async_context(system.anonymous())
        admin.headers["Authorization"] = f"Bearer {token}"
        community = await admin.post(
            "/v1/communities", json={"name": "Tea lovers", "description": "Oolong", "timezone": "Asia/Shanghai"}
        )
        assert community.status_code == 201, community.text
        people = People(system, stack, admin, admin, community.json()["id"])
        people.partner = await people.partner_client(*PARTNER_SCOPES)
        yield people


@pytest_asyncio.fixture
async def people(system: System) -> AsyncIterator[People]:
    async for people in people_of(system):
        yield people


async def ledger_sum(system: System, member_id: str) -> int:
    """The sum of the member's ledger entries, read from rewards' own table."""
    db = system.state("rewards").db
    async with db.session() as session:
        total = await session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(ENTRIES.c.delta), 0)).where(
                ENTRIES.c.member_id == uuid.UUID(member_id)
            )
        )
    return int(total or 0)


# --- flow 1: a partner onboards a member, who checks in and earns -------------------------


async def test_partner_onboards_a_member_who_checks_in_and_keeps_a_streak(system: System, people: People) -> None:
    partner = people.partner
    me = (await partner.get("/v1/me")).json()
    assert me["kind"] == "partner"
    assert sorted(me["scopes"]) == sorted(PARTNER_SCOPES)

    external_id = f"wx-{uuid.uuid4().hex[:10]}"
    member_id = await people.new_member(external_id, email="lin@example.com", tags=["vip"])
    lin = await people.member_client(external_id=external_id)
    me = (await lin.get("/v1/me")).json()
    assert (me["kind"], me["member_id"]) == ("member", member_id)

    # Yesterday's check-in (occurred_at picks the community's local day), sent from the app.
    yesterday = datetime.now(UTC) - timedelta(days=1)
    first = await people.check_in(lin, at=yesterday)
    assert first["duplicate"] is False
    # Nothing is awarded before the relay has carried `activity.recorded` to rewards.
    assert (await people.points(lin, member_id))["balance"] == 0
    assert await system.drain() > 0

    points = await people.points(lin, member_id)
    assert (points["balance"], points["lifetime"], points["streak_days"]) == (5, 5, 1)
    assert points["level"] == {"name": "Newcomer", "next_name": "Regular", "next_at": 100}
    ledger = (await lin.get(f"/v1/members/{member_id}/points/ledger")).json()
    (entry,) = ledger["items"]
    assert (entry["delta"], entry["balance_after"], entry["reason"]) == (5, 5, "earned:check_in")
    # The entry names what caused it: the event the app posted.
    assert entry["source_event_id"] == first["id"]
    assert entry["community_id"] == people.community_id

    # The next local day extends the streak; the app retrying the same event changes nothing.
    second = await people.check_in(lin)
    again = await lin.post(
        "/v1/events", json={"id": second["id"], "community_id": people.community_id, "type": "check_in"}
    )
    assert again.status_code == 202
    assert again.json() == {"id": second["id"], "duplicate": True}
    await system.drain()
    points = await people.points(lin, member_id)
    assert (points["balance"], points["lifetime"], points["streak_days"]) == (10, 10, 2)
    # A second check-in the same local day earns nothing (daily cap) and keeps the streak.
    await people.check_in(lin)
    await system.drain()
    points = await people.points(lin, member_id)
    assert (points["balance"], points["streak_days"]) == (10, 2)
    assert await ledger_sum(system, member_id) == 10

    # Members saw the activity too; the operator's view agrees with the member's.
    profile = (await lin.get(f"/v1/members/{member_id}")).json()
    assert profile["last_active_at"] is not None
    assert profile["email"] == "lin@example.com"
    assert (await people.points(people.admin, member_id))["balance"] == 10
    board = (await lin.get("/v1/leaderboards", params={"community_id": people.community_id, "period": "all"})).json()
    assert board["items"][0]["member_id"] == member_id
    assert board["me"] == {"rank": 1, "points": 10}


async def test_a_partner_reports_activity_by_external_id(system: System, people: People) -> None:
    external_id = f"crm-{uuid.uuid4().hex[:10]}"
    member_id = await people.new_member(external_id)
    answer = await people.partner.post(
        "/v1/events",
        json={"external_id": external_id, "community_id": people.community_id, "type": "invite_accepted"},
    )
    assert answer.status_code == 202, answer.text
    await system.drain()
    assert (await people.points(people.partner, member_id))["balance"] == 20


# --- flow 4: redemption, with Idempotency-Key replays -------------------------------------


async def test_a_member_redeems_once_per_idempotency_key(system: System, people: People) -> None:
    member_id = await people.new_member()
    lin = await people.member_client(member_id)
    await people.give_points(member_id, 50)
    created = await people.admin.post("/v1/rewards", json={"name": "Tea cup", "cost": 20, "stock": 2})
    assert created.status_code == 201, created.text
    reward = created.json()

    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await lin.post("/v1/redemptions", json={"reward_id": reward["id"]}, headers=key)
    assert first.status_code == 201, first.text
    replay = await lin.post("/v1/redemptions", json={"reward_id": reward["id"]}, headers=key)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    redemption = first.json()
    assert (redemption["member_id"], redemption["cost"], redemption["status"]) == (member_id, 20, "pending")

    # The key now belongs to that body: another body is 422, and changes nothing.
    other = await lin.post("/v1/redemptions", json={"reward_id": str(uuid.uuid4())}, headers=key)
    assert_problem(other, 422)
    assert (await people.points(lin, member_id))["balance"] == 30
    stock = (await lin.get(f"/v1/rewards/{reward['id']}")).json()["stock"]
    assert stock == 1

    second = await lin.post(
        "/v1/redemptions", json={"reward_id": reward["id"]}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert second.status_code == 201
    assert (await people.points(lin, member_id))["balance"] == 10
    # Out of stock and out of points are 409 problems naming the reason; nothing moves.
    empty = await lin.post("/v1/redemptions", json={"reward_id": reward["id"]})
    assert_problem(empty, 409, "out-of-stock")
    dear = (await people.admin.post("/v1/rewards", json={"name": "Teapot", "cost": 500, "stock": None})).json()
    assert_problem(await lin.post("/v1/redemptions", json={"reward_id": dear["id"]}), 409, "insufficient-points")
    assert (await people.points(lin, member_id))["balance"] == 10

    mine = (await lin.get("/v1/redemptions")).json()["items"]
    assert sorted(r["id"] for r in mine) == sorted([redemption["id"], second.json()["id"]])

    # The member cancels one: points and stock come back; the ledger still balances.
    cancelled = await lin.post(f"/v1/redemptions/{redemption['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (await people.points(lin, member_id))["balance"] == 30
    assert (await lin.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 1
    reasons = [e["reason"] for e in (await lin.get(f"/v1/members/{member_id}/points/ledger")).json()["items"]]
    assert reasons == ["refund", "redemption", "redemption", "adjustment"]
    assert await ledger_sum(system, member_id) == 30
    # The redemption and cancellation reached the event stream.
    assert await system.drain() > 0


async def test_adjustment_replays_and_never_goes_below_zero(system: System, people: People) -> None:
    member_id = await people.new_member()
    key = {"Idempotency-Key": f"gift-{member_id}"}
    body = {"member_id": member_id, "delta": 15, "reason": "apology"}
    first = await people.admin.post("/v1/points/adjustments", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await people.admin.post("/v1/points/adjustments", json=body, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert_problem(await people.admin.post("/v1/points/adjustments", json={**body, "delta": 16}, headers=key), 422)
    too_much = {"member_id": member_id, "delta": -16, "reason": "oops"}
    assert_problem(await people.admin.post("/v1/points/adjustments", json=too_much), 409, "insufficient-points")
    assert (await people.points(people.admin, member_id))["balance"] == 15
    assert await ledger_sum(system, member_id) == 15


# --- flow 5: erasure ----------------------------------------------------------------------


async def test_erasure_reaches_rewards_and_the_member_is_gone(system: System, people: People) -> None:
    member_id = await people.new_member(email="erase.me@example.com", phone="+8613800138000")
    lin = await people.member_client(member_id)
    await people.check_in(lin)
    await system.drain()
    await people.give_points(member_id, 30)
    reward = (await people.admin.post("/v1/rewards", json={"name": "Mug", "cost": 10, "stock": 5})).json()
    pending = await lin.post("/v1/redemptions", json={"reward_id": reward["id"]})
    assert pending.status_code == 201, pending.text

    # The member asks for erasure with their own token.
    erased = await lin.delete(f"/v1/members/{member_id}")
    assert erased.status_code == 204, erased.text
    assert await system.drain() > 0  # member.erased reaches rewards

    # Members: the person is gone for everyone. The gateway applied member.erased too: the
    # member's own tokens are revoked.
    assert_problem(await people.admin.get(f"/v1/members/{member_id}"), 404)
    assert_problem(await people.admin.delete(f"/v1/members/{member_id}"), 404)
    assert_problem(await lin.get(f"/v1/members/{member_id}"), 401, "invalid-token")
    assert_problem(await lin.delete(f"/v1/members/{member_id}"), 401, "invalid-token")
    found = (await people.admin.get("/v1/members", params={"q": "erase.me@example.com"})).json()
    assert found["items"] == []
    # A token can no longer be minted for them.
    minted = await people.partner.post("/v1/auth/member-token", json={"member_id": member_id})
    assert_problem(minted, 404)

    # Rewards pseudonymized: pending redemption refunded, adjustment reasons blanked,
    # off the leaderboard, no more earning; the ledger still balances.
    async with system.direct("rewards", Identity(kind="staff", id=str(uuid.uuid4()), roles=("admin",))) as rewards:
        export = (await rewards.get(f"/internal/members/{member_id}/export")).json()
    assert export["erased_at"] is not None
    assert {r["status"] for r in export["redemptions"]} == {"cancelled"}
    assert {a["reason"] for a in export["adjustments"]} == {"[erased]"}
    assert export["points"]["balance"] == 35 == await ledger_sum(system, member_id)
    board = await people.admin.get("/v1/leaderboards", params={"community_id": people.community_id, "period": "all"})
    assert member_id not in {item["member_id"] for item in board.json()["items"]}
    assert (await people.admin.get(f"/v1/rewards/{reward['id']}")).json()["stock"] == 5


# --- access: members see only themselves, partners only their scopes ----------------------


async def test_a_member_never_reads_or_changes_another_member(system: System, people: People) -> None:
    lin_id = await people.new_member(email="lin@example.com")
    mei_id = await people.new_member(email="mei@example.com")
    lin = await people.member_client(lin_id)
    mei = await people.member_client(mei_id)
    await people.give_points(mei_id, 40)
    reward = (await people.admin.post("/v1/rewards", json={"name": "Fan", "cost": 10, "stock": 3})).json()
    meis_redemption = (await mei.post("/v1/redemptions", json={"reward_id": reward["id"]})).json()
    await people.check_in(mei)
    await system.drain()
    before = await people.points(mei, mei_id)
    community = people.community_id

    attempts = [
        lin.get(f"/v1/members/{mei_id}"),
        lin.patch(f"/v1/members/{mei_id}", json={"display_name": "Taken over"}),
        lin.delete(f"/v1/members/{mei_id}"),
        lin.get(f"/v1/members/{mei_id}/communities"),
        lin.delete(f"/v1/communities/{community}/members/{mei_id}"),
        lin.post(f"/v1/communities/{community}/members", json={"member_id": mei_id}),
        lin.get(f"/v1/members/{mei_id}/points"),
        lin.get(f"/v1/members/{mei_id}/points/ledger"),
        lin.get(f"/v1/members/{mei_id}/badges"),
        lin.post("/v1/events", json={"member_id": mei_id, "community_id": community, "type": "check_in"}),
        lin.post("/v1/redemptions", json={"reward_id": reward["id"], "member_id": mei_id}),
        lin.get("/v1/redemptions", params={"member_id": mei_id}),
        lin.get(f"/v1/redemptions/{meis_redemption['id']}"),
        lin.post(f"/v1/redemptions/{meis_redemption['id']}/cancel"),
    ]
    for attempt in attempts:
        answer = await attempt
        assert_problem(answer, 404)
        assert "mei" not in answer.text.lower()

    # Lists a member may call show only their own rows.
    assert (await lin.get("/v1/redemptions")).json()["items"] == []
    # Staff-only endpoints are 403 for members (they exist, they are just not theirs).
    for staff_only in (
        lin.get("/v1/members"),
        lin.post("/v1/communities", json={"name": "Mine"}),
        lin.post("/v1/rewards", json={"name": "Free", "cost": 1, "stock": 1}),
        lin.post("/v1/points/adjustments", json={"member_id": lin_id, "delta": 100, "reason": "me"}),
        lin.get("/v1/api-keys"),
    ):
        assert_problem(await staff_only, 403)

    # Nothing of Mei's changed.
    assert await people.points(mei, mei_id) == before
    profile = (await mei.get(f"/v1/members/{mei_id}")).json()
    assert (profile["display_name"], profile["email"]) == ("Lin", "mei@example.com")
    assert [m["community_id"] for m in (await mei.get(f"/v1/members/{mei_id}/communities")).json()] == [community]
    assert (await mei.get(f"/v1/redemptions/{meis_redemption['id']}")).json()["status"] == "pending"
    assert (await people.points(people.admin, lin_id))["balance"] == 0


async def test_partner_keys_do_only_what_their_scopes_allow(system: System, people: People) -> None:
    member_id = await people.new_member()
    reader = await people.partner_client("read")
    answer = await reader.get(f"/v1/members/{member_id}")
    assert answer.status_code == 200, answer.text
    assert (await reader.get(f"/v1/members/{member_id}/points")).status_code == 200
    for denied in (
        reader.post("/v1/members", json={"external_id": "x-1", "display_name": "X"}),
        reader.patch(f"/v1/members/{member_id}", json={"display_name": "X"}),
        reader.post("/v1/auth/member-token", json={"member_id": member_id}),
        reader.post("/v1/events", json={"member_id": member_id, "community_id": people.community_id, "type": "x"}),
        reader.delete(f"/v1/members/{member_id}"),
        reader.post("/v1/api-keys", json={"name": "more", "scopes": ["read"]}),
        reader.get("/v1/staff"),
        reader.put("/v1/rewards/rules", json=[]),
        reader.post("/v1/points/adjustments", json={"member_id": member_id, "delta": 5, "reason": "x"}),
    ):
        assert_problem(await denied, 403)

    writer = await people.partner_client("members:write")
    assert (await writer.post("/v1/members", json={"external_id": "x-2", "display_name": "X"})).status_code == 201
    assert_problem(await writer.post("/v1/auth/member-token", json={"member_id": member_id}), 403)
    assert_problem(await writer.get(f"/v1/members/{member_id}/points"), 403)

    # A revoked key is 401 from then on.
    key_id, key = await people.api_key("read")
    revocable = people.client({"X-API-Key": key})
    assert (await revocable.get("/v1/me")).status_code == 200
    assert (await people.admin.delete(f"/v1/api-keys/{key_id}")).status_code == 204
    assert_problem(await revocable.get("/v1/me"), 401)
    assert_problem(await revocable.get(f"/v1/members/{member_id}"), 401)


async def test_no_or_bad_credentials_are_401_everywhere(system: System, people: People) -> None:
    member_id = await people.new_member()
    anonymous = people.client()
    forged = people.client({"Authorization": "Bearer not.a.jwt"})
    bad_key = people.client({"X-API-Key": "qk_" + "x" * 40})
    requests = [
        ("GET", "/v1/me", None),
        ("GET", f"/v1/members/{member_id}", None),
        ("POST", "/v1/members", {"external_id": "anon", "display_name": "A"}),
        ("POST", "/v1/events", {"member_id": member_id, "community_id": people.community_id, "type": "check_in"}),
        ("GET", f"/v1/members/{member_id}/points", None),
        ("GET", "/v1/rewards", None),
        ("POST", "/v1/redemptions", {"reward_id": str(uuid.uuid4())}),
        ("POST", "/v1/auth/member-token", {"member_id": member_id}),
        ("GET", "/v1/api-keys", None),
    ]
    for client in (anonymous, forged, bad_key):
        for method, path, body in requests:
            answer = await client.request(method, path, json=body)
            assert_problem(answer, 401)
    assert_problem(await anonymous.post("/v1/auth/token", data={"username": ADMIN_EMAIL, "password": "wrong"}), 401)
    await system.drain()
    assert (await people.points(people.admin, member_id))["balance"] == 0
    found = (await people.admin.get("/v1/members", params={"q": "anon"})).json()
    assert found["items"] == []


# --- bad input anywhere: a 4xx problem, and nothing changes -------------------------------


async def test_bad_input_is_a_problem_and_changes_nothing(system: System, people: People) -> None:
    admin, partner = people.admin, people.partner
    member_id = await people.new_member("wx-taken")
    lin = await people.member_client(member_id)
    community = people.community_id
    future = stamp(datetime.now(UTC) + timedelta(days=2))
    rules_before = (await admin.get("/v1/rewards/rules")).json()

    cases: list[tuple[str, str, dict[str, Any], int]] = [
        # members
        ("POST", "/v1/members", {"json": {"external_id": "wx-taken", "display_name": "Dup"}}, 409),
        ("POST", "/v1/members", {"json": {"external_id": "wx-new", "display_name": ""}}, 422),
        ("POST", "/v1/members", {"json": {"external_id": "wx-new", "display_name": "X", "email": "nope"}}, 422),
        ("POST", "/v1/members", {"json": {"external_id": "wx-new", "display_name": "X", "shoe": 1}}, 422),
        ("POST", "/v1/members", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("GET", "/v1/members", {"params": {"limit": 1000}}, 422),
        ("GET", "/v1/members", {"params": {"cursor": "garbage"}}, 422),
        ("GET", "/v1/members/not-a-uuid", {}, 422),
        ("GET", f"/v1/members/{uuid.uuid4()}", {}, 404),
        ("PATCH", f"/v1/members/{member_id}", {"json": {"tags": "vip"}}, 422),
        ("POST", "/v1/communities", {"json": {"name": "Moon", "timezone": "Mars/Olympus"}}, 422),
        ("POST", f"/v1/communities/{uuid.uuid4()}/members", {"json": {"member_id": member_id}}, 404),
        # activity
        (
            "POST",
            "/v1/events",
            {"json": {"member_id": member_id, "community_id": community, "type": "check_in", "occurred_at": future}},
            422,
        ),
        (
            "POST",
            "/v1/events",
            {"json": {"member_id": member_id, "community_id": str(uuid.uuid4()), "type": "check_in"}},
            404,
        ),
        (
            "POST",
            "/v1/events",
            {"json": {"member_id": str(uuid.uuid4()), "community_id": community, "type": "check_in"}},
            404,
        ),
        ("POST", "/v1/events", {"json": {"member_id": member_id, "community_id": community, "type": "bad type!"}}, 422),
        ("POST", "/v1/events/batch", {"json": {"events": []}}, 422),
        # rewards
        ("PUT", "/v1/rewards/rules", {"json": [{"event_type": "check_in", "points": -5}]}, 422),
        ("POST", "/v1/rewards", {"json": {"name": "Free", "cost": 0, "stock": 1}}, 422),
        ("POST", "/v1/points/adjustments", {"json": {"member_id": member_id, "delta": 0, "reason": "x"}}, 422),
        ("POST", "/v1/points/adjustments", {"json": {"member_id": member_id, "delta": -1, "reason": "x"}}, 409),
        ("POST", "/v1/redemptions", {"json": {"reward_id": "nope", "member_id": member_id}}, 422),
        ("POST", "/v1/redemptions", {"json": {"reward_id": str(uuid.uuid4()), "member_id": member_id}}, 404),
        ("GET", "/v1/leaderboards", {"params": {"community_id": community, "period": "decade"}}, 422),
        # gateway
        ("POST", "/v1/api-keys", {"json": {"name": "k", "scopes": ["everything"]}}, 422),
        (
            "POST",
            "/v1/staff",
            {"json": {"email": "s@example.com", "display_name": "S", "password": "short", "roles": ["operator"]}},
            422,
        ),
        ("POST", "/v1/auth/member-token", {"json": {"member_id": str(uuid.uuid4())}}, 404),
        ("POST", "/v1/auth/member-token", {"json": {}}, 422),
    ]
    for method, path, options, status in cases:
        caller = partner if path.startswith(("/v1/events", "/v1/auth/member-token")) else admin
        answer = await caller.request(method, path, **options)
        assert answer.status_code == status, f"{method} {path} {options}: {answer.status_code} {answer.text}"
        assert_problem(answer, status)
        if status == 422 and answer.json()["type"].endswith("validation-error"):
            assert answer.json().get("errors"), answer.text

    # A member's own bad input is refused the same way.
    assert_problem(await lin.patch(f"/v1/members/{member_id}", json={"tags": ["self-promoted"]}), 403)
    assert_problem(
        await lin.post("/v1/events", json={"community_id": community, "type": "check_in", "occurred_at": future}), 422
    )

    # Nothing changed anywhere.
    await system.drain()
    listed = (await admin.get("/v1/members")).json()["items"]
    assert [m["id"] for m in listed] == [member_id]
    profile = (await admin.get(f"/v1/members/{member_id}")).json()
    assert (profile["display_name"], profile["tags"], profile["last_active_at"]) == ("Lin", [], None)
    assert [c["id"] for c in (await admin.get("/v1/communities")).json()["items"]] == [community]
    assert (await admin.get("/v1/rewards/rules")).json() == rules_before
    assert (await admin.get("/v1/rewards")).json()["items"] == []
    assert (await people.points(admin, member_id))["balance"] == 0
    assert await ledger_sum(system, member_id) == 0
    keys = (await admin.get("/v1/api-keys")).json()["items"]
    assert len(keys) == 1  # the fixture's partner key
    staff = (await admin.get("/v1/staff")).json()["items"]
    assert [s["email"] for s in staff] == [ADMIN_EMAIL]


@pytest_asyncio.fixture
async def pg_people(system: System) -> AsyncIterator[People]:
    async for people in people_of(system):
        yield people


async def test_text_postgres_cannot_store_is_a_422_everywhere(system: System, pg_people: People) -> None:
    """NUL characters were 500s on Postgres in every service (found by schemathesis)."""
    admin = pg_people.admin
    member_id = await pg_people.new_member()
    nul = "tea\u0000pot"
    attempts = [
        admin.post("/v1/communities", json={"name": nul}),
        admin.get("/v1/members", params={"q": nul}),
        admin.post("/v1/rewards", json={"name": nul, "cost": 1, "stock": 1}),
        admin.post("/v1/points/adjustments", json={"member_id": member_id, "delta": 5, "reason": nul}),
        admin.post("/v1/badges", json={"code": "nul", "name": nul, "criteria": {"streak_days": 3}}),
        admin.post("/v1/api-keys", json={"name": nul, "scopes": ["read"]}),
        admin.post(
            "/v1/staff",
            json={"email": "nul@example.com", "display_name": nul, "password": "a-long-password-1", "roles": ["agent"]},
        ),
        pg_people.client().post("/v1/auth/token", data={"username": nul, "password": "whatever-password"}),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 422, "invalid-text")
    assert [c["id"] for c in (await admin.get("/v1/communities")).json()["items"]] == [pg_people.community_id]
    assert (await admin.get("/v1/rewards")).json()["items"] == []
    assert (await admin.get("/v1/badges")).json()["items"] == []
    assert (await pg_people.points(admin, member_id))["balance"] == 0
    assert len((await admin.get("/v1/api-keys")).json()["items"]) == 1
    assert len((await admin.get("/v1/staff")).json()["items"]) == 1
