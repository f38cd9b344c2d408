"""The catalog and redemptions: points and stock together, refunds, limits, isolation, concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.rewards.catalog.service import stock_left
from tests.rewards.conftest import Api
from tests.rewards.factories import assert_ledger_balanced, earn, points_of, rewards_events
from tests.system import System, member, partner, staff

OPERATOR = staff("operator")
PROBLEMS = "https://qunyun.dev/problems/"


async def create_reward(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Mug", "cost": 50, "stock": 5} | fields
    async with api(OPERATOR) as client:
        response = await client.post("/v1/rewards", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def redeem(api: Api, member_id: uuid.UUID, reward_id: str, key: str | None = None) -> Any:
    async with api(member(member_id)) as client:
        return await client.post(
            "/v1/redemptions", json={"reward_id": reward_id}, headers={"Idempotency-Key": key} if key else {}
        )


async def stock_of(system: System, reward_id: str) -> int | None:
    async with system.state("rewards").db.session() as session:
        return await stock_left(session, uuid.UUID(reward_id))


async def test_operators_manage_the_catalog_and_everyone_reads_it(api: Api) -> None:
    now = datetime.now(UTC)
    mug = await create_reward(api, per_member_limit=2, description="A mug")
    assert (mug["cost"], mug["stock"], mug["per_member_limit"], mug["active"]) == (50, 5, 2, True)
    later = await create_reward(api, name="Later", active_from=(now + timedelta(days=1)).isoformat())
    assert later["active"] is False
    async with api(OPERATOR) as client:
        patched = await client.patch(f"/v1/rewards/{mug['id']}", json={"stock": 9, "cost": 40})
        assert patched.status_code == 200
        assert (patched.json()["stock"], patched.json()["cost"]) == (9, 40)
        assert {r["id"] for r in (await client.get("/v1/rewards")).json()["items"]} == {mug["id"], later["id"]}
        assert [r["id"] for r in (await client.get("/v1/rewards", params={"active": True})).json()["items"]] == [
            mug["id"]
        ]
        assert (await client.patch(f"/v1/rewards/{uuid.uuid4()}", json={"cost": 1})).status_code == 404
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"cost": None})).status_code == 422
        bad_window = {"active_from": now.isoformat(), "active_to": (now - timedelta(days=1)).isoformat()}
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json=bad_window)).status_code == 422
    async with api(member(uuid.uuid4())) as client:
        assert [r["id"] for r in (await client.get("/v1/rewards")).json()["items"]] == [mug["id"]]
        assert (await client.get(f"/v1/rewards/{later['id']}")).status_code == 404
        assert (await client.post("/v1/rewards", json={"name": "x", "cost": 1, "stock": 1})).status_code == 403
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"stock": 100})).status_code == 403


async def test_reward_validation(api: Api) -> None:
    now = datetime.now(UTC)
    async with api(OPERATOR) as client:
        for body in (
            {"name": "x", "cost": 0, "stock": 1},
            {"name": "x", "cost": 5, "stock": -1},
            {"name": "", "cost": 5, "stock": 1},
            {"name": "x", "cost": 5},
            {"name": "x", "cost": 5, "stock": 1, "per_member_limit": 0},
            {"name": "x", "cost": 5, "stock": 1, "active_from": now.isoformat(), "active_to": now.isoformat()},
            {"name": "x", "cost": 5, "stock": 1, "active_from": "2026-01-01T00:00:00"},
        ):
            response = await client.post("/v1/rewards", json=body)
            assert response.status_code == 422, body
        assert (await client.get("/v1/rewards")).json()["items"] == []


async def test_redeeming_takes_points_and_stock_together(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 120)
    mug = await create_reward(api)
    response = await redeem(api, mid, mug["id"])
    assert response.status_code == 201, response.text
    redemption = response.json()
    assert (redemption["status"], redemption["cost"], redemption["member_id"]) == ("pending", 50, str(mid))
    assert (await points_of(api, mid))["balance"] == 70
    assert await stock_of(system, mug["id"]) == 4
    async with api(member(mid)) as client:
        entry = (await client.get(f"/v1/members/{mid}/points/ledger", params={"limit": 1})).json()["items"][0]
    assert (entry["delta"], entry["reason"], entry["redemption_id"]) == (-50, "redemption", redemption["id"])
    (created,) = await rewards_events(system, "rewards.redemption_created")
    assert (created["redemption_id"], created["balance"]) == (redemption["id"], 70)
    assert await assert_ledger_balanced(system, mid) == 70


async def test_redemption_refusals_change_nothing(system: System, api: Api) -> None:
    rich, poor = uuid.uuid4(), uuid.uuid4()
    await earn(system, rich, 500)
    await earn(system, poor, 20)
    now = datetime.now(UTC)
    mug = await create_reward(api, stock=2, per_member_limit=1, cost=10)
    gone = await create_reward(api, stock=0, cost=10)
    past = await create_reward(
        api,
        cost=10,
        active_to=(now - timedelta(minutes=1)).isoformat(),
        active_from=(now - timedelta(days=2)).isoformat(),
    )
    pricey = await create_reward(api, cost=100)
    assert (await redeem(api, poor, pricey["id"])).json()["type"] == PROBLEMS + "insufficient-points"
    assert (await redeem(api, rich, gone["id"])).json()["type"] == PROBLEMS + "out-of-stock"
    unavailable = await redeem(api, rich, past["id"])
    assert (unavailable.status_code, unavailable.json()["type"]) == (409, PROBLEMS + "reward-unavailable")
    assert (await redeem(api, rich, str(uuid.uuid4()))).status_code == 404
    assert (await redeem(api, rich, mug["id"])).status_code == 201
    limited = await redeem(api, rich, mug["id"])
    assert (limited.status_code, limited.json()["type"]) == (409, PROBLEMS + "limit-reached")
    other, last = uuid.uuid4(), uuid.uuid4()
    await earn(system, other, 20)
    await earn(system, last, 20)
    assert (await redeem(api, other, mug["id"])).status_code == 201
    assert (await redeem(api, last, mug["id"])).json()["type"] == PROBLEMS + "out-of-stock"
    assert (await points_of(api, poor))["balance"] == 20
    assert (await points_of(api, other))["balance"] == 10
    assert (await points_of(api, last))["balance"] == 20
    assert (await points_of(api, rich))["balance"] == 490
    assert await stock_of(system, pricey["id"]) == 5
    for mid in (rich, poor, other, last):
        await assert_ledger_balanced(system, mid)


async def test_redemptions_are_idempotent(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    mug = await create_reward(api)
    first = await redeem(api, mid, mug["id"], key="r-1")
    second = await redeem(api, mid, mug["id"], key="r-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert (await points_of(api, mid))["balance"] == 50
    assert await stock_of(system, mug["id"]) == 4


async def test_who_may_redeem(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    mug = await create_reward(api)
    async with api(partner("read")) as client:
        assert (
            await client.post("/v1/redemptions", json={"reward_id": mug["id"], "member_id": str(mid)})
        ).status_code == 403
    async with api(member(uuid.uuid4())) as client:
        body = {"reward_id": mug["id"], "member_id": str(mid)}
        assert (await client.post("/v1/redemptions", json=body)).status_code == 404
    async with api(OPERATOR) as client:
        assert (await client.post("/v1/redemptions", json={"reward_id": mug["id"]})).status_code == 422
        on_behalf = await client.post("/v1/redemptions", json={"reward_id": mug["id"], "member_id": str(mid)})
        assert on_behalf.status_code == 201
        assert on_behalf.json()["member_id"] == str(mid)


async def test_cancel_refunds_points_to_their_lots_and_stock(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    mug = await create_reward(api, per_member_limit=1)
    redemption = (await redeem(api, mid, mug["id"])).json()
    async with api(member(mid)) as client:
        cancelled = await client.post(f"/v1/redemptions/{redemption['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert (await client.post(f"/v1/redemptions/{redemption['id']}/cancel")).status_code == 409
        entry = (await client.get(f"/v1/members/{mid}/points/ledger", params={"limit": 1})).json()["items"][0]
    assert (entry["delta"], entry["reason"], entry["redemption_id"]) == (50, "refund", redemption["id"])
    points = await points_of(api, mid)
    assert (points["balance"], points["lifetime"]) == (100, 100)  # a refund is not new lifetime points
    assert await stock_of(system, mug["id"]) == 5
    assert await assert_ledger_balanced(system, mid) == 100
    (event,) = await rewards_events(system, "rewards.redemption_cancelled")
    assert event["redemption_id"] == redemption["id"]
    # A cancelled redemption does not count against the per-member limit.
    assert (await redeem(api, mid, mug["id"])).status_code == 201


async def test_fulfil_and_cancel_rules(system: System, api: Api) -> None:
    mid, stranger = uuid.uuid4(), uuid.uuid4()
    await earn(system, mid, 200)
    mug = await create_reward(api)
    first = (await redeem(api, mid, mug["id"])).json()
    second = (await redeem(api, mid, mug["id"])).json()
    async with api(member(stranger)) as client:
        assert (await client.post(f"/v1/redemptions/{first['id']}/cancel")).status_code == 404
        assert (await client.get(f"/v1/redemptions/{first['id']}")).status_code == 404
    async with api(member(mid)) as client:
        assert (await client.post(f"/v1/redemptions/{first['id']}/fulfil")).status_code == 403
    async with api(OPERATOR) as client:
        fulfilled = await client.post(f"/v1/redemptions/{first['id']}/fulfil")
        assert fulfilled.status_code == 200
        assert fulfilled.json()["status"] == "fulfilled"
        assert fulfilled.json()["fulfilled_at"]
        assert (await client.post(f"/v1/redemptions/{first['id']}/fulfil")).status_code == 409
        assert (await client.post(f"/v1/redemptions/{first['id']}/cancel")).status_code == 409
        assert (await client.post(f"/v1/redemptions/{second['id']}/cancel")).status_code == 200
        assert (await client.post(f"/v1/redemptions/{uuid.uuid4()}/fulfil")).status_code == 404
    assert (await points_of(api, mid))["balance"] == 150


async def test_listing_redemptions(system: System, api: Api) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for mid in (alice, bob):
        await earn(system, mid, 200)
    mug, cap = await create_reward(api), await create_reward(api, name="Cap", cost=20)
    for mid, reward in ((alice, mug), (alice, cap), (bob, mug)):
        assert (await redeem(api, mid, reward["id"])).status_code == 201
    async with api(OPERATOR) as client:
        everything = (await client.get("/v1/redemptions")).json()["items"]
        assert len(everything) == 3
        by_reward = (await client.get("/v1/redemptions", params={"reward_id": mug["id"]})).json()["items"]
        assert {r["member_id"] for r in by_reward} == {str(alice), str(bob)}
        page = (await client.get("/v1/redemptions", params={"limit": 2})).json()
        rest = (await client.get("/v1/redemptions", params={"limit": 2, "cursor": page["next_cursor"]})).json()
        assert len(page["items"]) + len(rest["items"]) == 3
        assert rest["next_cursor"] is None
        assert (await client.get("/v1/redemptions", params={"status": "pending", "member_id": str(bob)})).json()[
            "items"
        ][0]["member_id"] == str(bob)
        assert (await client.get("/v1/redemptions", params={"status": "lost"})).status_code == 422
    async with api(member(alice)) as client:
        own = (await client.get("/v1/redemptions")).json()["items"]
        assert {r["member_id"] for r in own} == {str(alice)}
        assert len(own) == 2
        assert (await client.get("/v1/redemptions", params={"member_id": str(bob)})).status_code == 404
    async with api(staff("reviewer")) as client:
        assert (await client.get("/v1/redemptions")).status_code == 403


async def test_100_concurrent_redemptions_of_stock_10_give_exactly_10(system: System, api: Api) -> None:
    members = [uuid.uuid4() for _ in range(100)]
    for mid in members:
        await earn(system, mid, 20)
    prize = await create_reward(api, cost=20, stock=10)
    responses = await asyncio.gather(*(redeem(api, mid, prize["id"]) for mid in members))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == 90
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {PROBLEMS + "out-of-stock"}
    assert await stock_of(system, prize["id"]) == 0
    winners = {r.json()["member_id"] for r in responses if r.status_code == 201}
    for mid in members:
        assert await assert_ledger_balanced(system, mid) == (0 if str(mid) in winners else 20)


async def test_20_concurrent_redemptions_by_a_member_who_can_afford_2_give_exactly_2(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    prize = await create_reward(api, cost=40, stock=None)
    responses = await asyncio.gather(*(redeem(api, mid, prize["id"]) for _ in range(20)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 2, statuses
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {PROBLEMS + "insufficient-points"}
    assert await assert_ledger_balanced(system, mid) == 20


async def test_concurrent_cancels_refund_once(system: System, api: Api) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 100)
    prize = await create_reward(api, cost=60, stock=3)
    redemption = (await redeem(api, mid, prize["id"])).json()

    async def cancel() -> int:
        async with api(OPERATOR) as client:
            return (await client.post(f"/v1/redemptions/{redemption['id']}/cancel")).status_code

    statuses = await asyncio.gather(*(cancel() for _ in range(10)))
    assert sorted(statuses) == [200] + [409] * 9
    assert await assert_ledger_balanced(system, mid) == 100
    assert await stock_of(system, prize["id"]) == 3


async def test_stock_lives_in_buckets_and_patches_set_the_units_left(system: System, api: Api) -> None:
    from services.rewards.catalog.repository import STOCK
    from services.rewards.catalog.service import STOCK_BUCKETS

    mid = uuid.uuid4()
    await earn(system, mid, 200)
    mug = await create_reward(api, cost=10, stock=20)
    async with system.state("rewards").db.session() as session:
        buckets = (
            await session.execute(sa.select(STOCK.c.remaining).where(STOCK.c.reward_id == uuid.UUID(mug["id"])))
        ).all()
    assert len(buckets) == STOCK_BUCKETS
    assert sorted({b.remaining for b in buckets}) == [1, 2]  # spread evenly
    assert (await redeem(api, mid, mug["id"])).status_code == 201
    async with api(OPERATOR) as client:
        assert (await client.get(f"/v1/rewards/{mug['id']}")).json()["stock"] == 19
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"stock": 1})).json()["stock"] == 1
        assert (await redeem(api, mid, mug["id"])).status_code == 201
        assert (await redeem(api, mid, mug["id"])).json()["type"] == PROBLEMS + "out-of-stock"
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"stock": None})).json()["stock"] is None
        for _ in range(3):  # unlimited now
            assert (await redeem(api, mid, mug["id"])).status_code == 201
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"stock": 2})).json()["stock"] == 2
        assert [r["stock"] for r in (await client.get("/v1/rewards")).json()["items"]] == [2]
        assert (await client.patch(f"/v1/rewards/{mug['id']}", json={"name": "Cup"})).json()["stock"] == 2
    assert await assert_ledger_balanced(system, mid) == 200 - 5 * 10


async def test_concurrent_redemptions_after_a_restock_take_exactly_the_new_stock(system: System, api: Api) -> None:
    members = [uuid.uuid4() for _ in range(40)]
    for mid in members:
        await earn(system, mid, 20)
    prize = await create_reward(api, cost=20, stock=3)
    async with api(OPERATOR) as client:
        assert (await client.patch(f"/v1/rewards/{prize['id']}", json={"stock": 25})).status_code == 200
    responses = await asyncio.gather(*(redeem(api, mid, prize["id"]) for mid in members))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 25, statuses
    assert await stock_of(system, prize["id"]) == 0


async def test_concurrent_redemptions_cancels_and_a_restock_keep_stock_exact(system: System, api: Api) -> None:
    """Units are conserved under any interleaving: left + live redemptions == what was set."""
    members = [uuid.uuid4() for _ in range(30)]
    for mid in members:
        await earn(system, mid, 40)
    prize = await create_reward(api, cost=20, stock=12)
    first = [r.json() for r in await asyncio.gather(*(redeem(api, mid, prize["id"]) for mid in members[:12]))]
    assert all(r["status"] == "pending" for r in first)

    async def cancel(redemption: dict[str, Any]) -> int:
        async with api(OPERATOR) as client:
            return (await client.post(f"/v1/redemptions/{redemption['id']}/cancel")).status_code

    results = await asyncio.gather(
        *(cancel(r) for r in first[:6]), *(redeem(api, mid, prize["id"]) for mid in members[12:])
    )
    cancels, redemptions = results[:6], results[6:]
    assert cancels == [200] * 6
    won = sum(1 for r in redemptions if r.status_code == 201)  # type: ignore[union-attr]
    assert won <= 6  # only the cancelled units came back
    live = 12 - 6 + won
    assert await stock_of(system, prize["id"]) == 12 - live
    for mid in members:
        await assert_ledger_balanced(system, mid)


async def test_20_concurrent_redemptions_of_a_limited_reward_by_one_member_stop_at_the_limit(
    system: System, api: Api
) -> None:
    mid = uuid.uuid4()
    await earn(system, mid, 1000)
    prize = await create_reward(api, cost=10, stock=50, per_member_limit=3)
    responses = await asyncio.gather(*(redeem(api, mid, prize["id"]) for _ in range(20)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 3, statuses
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {PROBLEMS + "limit-reached"}
    assert await stock_of(system, prize["id"]) == 47
    assert await assert_ledger_balanced(system, mid) == 970
    async with system.state("rewards").db.session() as session:
        rows = await session.scalar(sa.text("SELECT count(*) FROM redemptions WHERE member_id = :m").bindparams(m=mid))
    assert rows == 3
