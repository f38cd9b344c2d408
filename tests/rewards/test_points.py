"""The ledger: adjustments (idempotent, never below zero), pages, expiry (oldest lots first), isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.rewards.points.expiry import expire_due_lots
from services.rewards.points.service import ACCOUNTS, LOTS, MAX_POINTS
from tests.rewards.conftest import Api
from tests.rewards.factories import (
    SHANGHAI,
    activity,
    assert_ledger_balanced,
    deliver,
    earn,
    local_today,
    points_of,
    rewards_events,
)
from tests.system import System, member, partner, staff

OPERATOR = staff("operator")


async def adjust(api: Api, member_id: uuid.UUID, delta: int, key: str | None = None, identity=OPERATOR):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    async with api(identity) as client:
        return await client.post(
            "/v1/points/adjustments",
            json={"member_id": str(member_id), "delta": delta, "reason": "goodwill"},
            headers=headers,
        )


async def test_adjustments_credit_and_debit_the_ledger(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    credit = await adjust(api, mid, 50)
    assert credit.status_code == 201, credit.text
    body = credit.json()
    assert (body["member_id"], body["delta"], body["balance_after"], body["reason"]) == (str(mid), 50, 50, "goodwill")
    debit = await adjust(api, mid, -20)
    assert debit.json()["balance_after"] == 30
    async with api(OPERATOR) as client:
        entries = (await client.get(f"/v1/members/{mid}/points/ledger")).json()["items"]
    assert [(e["delta"], e["balance_after"], e["reason"]) for e in entries] == [
        (-20, 30, "adjustment"),
        (50, 50, "adjustment"),
    ]
    assert entries[1]["adjustment_id"] == body["id"]
    points = await points_of(api, mid)
    assert (points["balance"], points["lifetime"]) == (30, 50)
    assert await assert_ledger_balanced(system, mid) == 30
    (awarded,) = await rewards_events(system, "rewards.points_awarded")
    assert awarded["reason"] == "adjustment"
    (deducted,) = await rewards_events(system, "rewards.points_deducted")
    assert deducted["points"] == 20


async def test_a_debit_never_takes_the_balance_below_zero(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await adjust(api, mid, 10)
    response = await adjust(api, mid, -11)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://qunyun.dev/problems/insufficient-points"
    assert (await points_of(api, mid))["balance"] == 10
    assert await assert_ledger_balanced(system, mid) == 10
    assert (await adjust(api, uuid.uuid4(), -1)).status_code == 409


async def test_balances_pass_32_bits_and_stop_at_the_points_limit(system: System, api: Api) -> None:
    """Balances were 32-bit columns (three large credits were a 500, then a 409); they are
    BIGINT now, and the limit is the largest integer JSON clients read exactly."""
    mid = uuid.uuid4()
    for _ in range(3):
        assert (await adjust(api, mid, 1_000_000_000)).status_code == 201
    assert (await points_of(api, mid))["balance"] == 3_000_000_000
    assert await assert_ledger_balanced(system, mid) == 3_000_000_000
    # Near the limit, set directly: at a billion per adjustment it would take millions of them.
    async with system.state("rewards").db.session() as session:
        await session.execute(ACCOUNTS.update().where(ACCOUNTS.c.member_id == mid).values(lifetime=MAX_POINTS - 5))
        await session.commit()
    assert (await adjust(api, mid, 5)).status_code == 201
    assert (await points_of(api, mid))["lifetime"] == MAX_POINTS == 2**53 - 1
    response = await adjust(api, mid, 1)
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://qunyun.dev/problems/points-limit"
    # Spending does not make room: lifetime points are capped too.
    assert (await adjust(api, mid, -10)).status_code == 201
    assert (await adjust(api, mid, 1)).status_code == 409
    assert await assert_ledger_balanced(system, mid) == 3_000_000_000 + 5 - 10


async def test_adjustments_are_idempotent(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    first = await adjust(api, mid, 25, key="k-1")
    again = await adjust(api, mid, 25, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert (await points_of(api, mid))["balance"] == 25
    other_body = await adjust(api, mid, 26, key="k-1")
    assert other_body.status_code == 422
    # A failed first attempt does not burn the key.
    failed = await adjust(api, mid, -1000, key="k-2")
    assert failed.status_code == 409
    assert (await adjust(api, mid, -5, key="k-2")).status_code == 201
    assert await assert_ledger_balanced(system, mid) == 20


async def test_adjustment_validation(api: Api) -> None:
    async with api(OPERATOR) as client:
        for body in (
            {"member_id": str(uuid.uuid4()), "delta": 0, "reason": "x"},
            {"member_id": str(uuid.uuid4()), "delta": 5, "reason": ""},
            {"member_id": "nope", "delta": 5, "reason": "x"},
            {"member_id": str(uuid.uuid4()), "delta": 5},
            {"member_id": str(uuid.uuid4()), "delta": 1.5, "reason": "x"},
        ):
            response = await client.post("/v1/points/adjustments", json=body)
            assert response.status_code == 422, body
            assert response.json()["errors"]


async def test_who_may_adjust(api: Api) -> None:
    mid = uuid.uuid4()
    assert (await adjust(api, mid, 5, identity=partner("rewards:write"))).status_code == 201
    assert (await adjust(api, mid, 5, identity=partner("read"))).status_code == 403
    assert (await adjust(api, mid, 5, identity=member(mid))).status_code == 403
    assert (await adjust(api, mid, 5, identity=staff("analyst"))).status_code == 403
    assert (await adjust(api, mid, 5, identity=staff("admin"))).status_code == 201


async def test_members_see_only_their_own_points(system: System, api: Api) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    await adjust(api, theirs, 10)
    async with api(member(mine)) as client:
        assert (await client.get(f"/v1/members/{mine}/points")).status_code == 200
        for path in (f"/v1/members/{theirs}/points", f"/v1/members/{theirs}/points/ledger"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
    async with api(partner("read")) as client:
        assert (await client.get(f"/v1/members/{theirs}/points")).json()["balance"] == 10
    async with api(staff("reviewer")) as client:
        assert (await client.get(f"/v1/members/{theirs}/points")).status_code == 403


async def test_an_unknown_member_has_zero_points(api: Api) -> None:
    points = await points_of(api, uuid.uuid4())
    assert points["balance"] == points["lifetime"] == points["streak_days"] == 0
    assert points["expiring"] == []
    assert points["level"]["name"] == "Newcomer"


async def test_ledger_pages_newest_first(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    for delta in range(1, 8):
        await adjust(api, mid, delta)
    seen = []
    cursor = None
    async with api(member(mid)) as client:
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(f"/v1/members/{mid}/points/ledger", params=params)).json()
            seen += [entry["delta"] for entry in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert (await client.get(f"/v1/members/{mid}/points/ledger", params={"cursor": "garbage"})).status_code == 422
        assert (await client.get(f"/v1/members/{mid}/points/ledger", params={"limit": 500})).status_code == 422
    assert seen == [7, 6, 5, 4, 3, 2, 1]


async def _expiring_program(api: Api) -> None:
    async with api(OPERATOR) as client:
        response = await client.put(
            "/v1/rewards/rules",
            json=[
                {"event_type": "invite_accepted", "points": 20, "expires_in_days": 30},
                {"event_type": "event_attended", "points": 10},
            ],
        )
        assert response.status_code == 200


async def _lots(system: System, member_id: uuid.UUID) -> list[tuple[datetime, int, int]]:
    async with system.state("rewards").db.session() as session:
        rows = await session.execute(
            sa.select(LOTS.c.expires_at, LOTS.c.points, LOTS.c.remaining)
            .where(LOTS.c.member_id == member_id)
            .order_by(LOTS.c.expires_at)
        )
        return [(row.expires_at, row.points, row.remaining) for row in rows]


async def test_expiry_takes_the_oldest_lots_first(system: System, api: Api) -> None:
    await _expiring_program(api)
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(
        system,
        activity(mid, community, "invite_accepted", local_date=today - timedelta(days=2)),  # lot A: expires first
        activity(mid, community, "invite_accepted", local_date=today - timedelta(days=1)),  # lot B
        activity(mid, community, "event_attended", local_date=today),  # no expiry
    )
    points = await points_of(api, mid)
    assert points["balance"] == 50
    assert [e["points"] for e in points["expiring"]] == [20, 20]
    first_expiry = datetime.fromisoformat(points["expiring"][0]["expires_at"])
    # Points earned on a local day are good for 30 full days after it, to local midnight.
    assert first_expiry.astimezone(ZoneInfo(SHANGHAI)).date() == today + timedelta(days=29)
    # Spending 25 takes lot A (20) and 5 from lot B, never the undated lot.
    assert (await adjust(api, mid, -25)).status_code == 201
    lots = await _lots(system, mid)
    assert [lot[2] for lot in lots] == [0, 15, 10]
    # Expiry runs when lot B is due: it loses its remaining 15; the undated lot stays.
    db = system.state("rewards").db
    async with db.session() as session:
        assert await expire_due_lots(session, lots[0][0] - timedelta(seconds=1)) == 0
        assert await expire_due_lots(session, lots[1][0] + timedelta(seconds=1)) == 1
        await db.commit(session)
    async with db.session() as session:
        assert await expire_due_lots(session, lots[1][0] + timedelta(days=1)) == 0
    async with api(OPERATOR) as client:
        newest = (await client.get(f"/v1/members/{mid}/points/ledger", params={"limit": 1})).json()["items"][0]
    assert (newest["delta"], newest["reason"], newest["balance_after"]) == (-15, "expired", 10)
    assert await assert_ledger_balanced(system, mid) == 10
    points = await points_of(api, mid)
    assert (points["balance"], points["lifetime"], points["expiring"]) == (10, 50, [])
    (expired,) = await rewards_events(system, "rewards.points_expired")
    assert (expired["points"], expired["balance"]) == (15, 10)


async def test_expiry_worker_pass_commits_and_skips_nothing_due(system: System, api: Api) -> None:
    from services.rewards.app import expiry_worker

    await _expiring_program(api)
    mid = uuid.uuid4()
    await deliver(system, activity(mid, uuid.uuid4(), "invite_accepted", local_date=local_today() - timedelta(days=40)))
    worker = expiry_worker(system.apps["rewards"])
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert (await points_of(api, mid))["balance"] == 0
    assert await assert_ledger_balanced(system, mid) == 0


async def test_expiry_job_skips_members_locked_elsewhere(system: System, api: Api) -> None:
    """With a member's account locked by another transaction, a pass leaves that member for later."""
    from services.rewards.points.service import lock_accounts

    await _expiring_program(api)
    busy, free = uuid.uuid4(), uuid.uuid4()
    old = local_today() - timedelta(days=40)
    await deliver(system, *[activity(m, uuid.uuid4(), "invite_accepted", local_date=old) for m in (busy, free)])
    db = system.state("rewards").db
    now = datetime.now(UTC)
    async with db.session() as holder:
        await lock_accounts(holder, [busy], now)
        async with db.session() as session:
            assert await expire_due_lots(session, now) == 1
            await db.commit(session)
        await holder.rollback()
    assert (await points_of(api, busy))["balance"] == 20
    assert (await points_of(api, free))["balance"] == 0
    async with db.session() as session:
        assert await expire_due_lots(session, now) == 1
        await db.commit(session)
    assert await assert_ledger_balanced(system, busy) == 0


async def test_earn_helper_and_ledger_sum(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 65)
    assert await assert_ledger_balanced(system, mid) == 65
