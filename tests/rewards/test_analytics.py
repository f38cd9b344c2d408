"""`GET /v1/analytics/rewards`: points issued, redeemed (net of refunds) and expired, and
redemptions, over a window; `issued` narrows to a community, the rest is program-wide."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.rewards.points.expiry import expire_due_lots
from services.rewards.points.models import NEVER
from services.rewards.points.service import LOTS
from tests.rewards.conftest import Api
from tests.rewards.factories import activity, deliver, local_today
from tests.system import System, member, staff

OPERATOR, ANALYST = staff("operator"), staff("analyst")


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def analytics(api: Api, **params: Any) -> Any:
    async with api(ANALYST) as client:
        response = await client.get("/v1/analytics/rewards", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_points_and_redemptions_of_a_window(system: System, api: Api) -> None:
    async with api(OPERATOR) as client:
        rules = [
            {"event_type": "invite_accepted", "points": 20, "expires_in_days": 30},
            {"event_type": "check_in", "points": 5},
        ]
        assert (await client.put("/v1/rewards/rules", json=rules)).status_code == 200
        reward = (await client.post("/v1/rewards", json={"name": "Mug", "cost": 10, "stock": 5})).json()
    mid, here, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(
        system,
        activity(mid, here, "check_in", local_date=today),
        activity(mid, here, "invite_accepted", local_date=today),
        activity(mid, elsewhere, "check_in", local_date=today),
    )
    async with api(OPERATOR) as client:
        gift = {"member_id": str(mid), "delta": 100, "reason": "welcome"}
        assert (await client.post("/v1/points/adjustments", json=gift)).status_code == 201
    async with api(member(mid)) as client:
        kept = (await client.post("/v1/redemptions", json={"reward_id": reward["id"]})).json()
        undone = (await client.post("/v1/redemptions", json={"reward_id": reward["id"]})).json()
        assert (await client.post(f"/v1/redemptions/{undone['id']}/cancel")).status_code == 200
    async with api(OPERATOR) as client:
        assert (await client.post(f"/v1/redemptions/{kept['id']}/fulfil")).status_code == 200

    figures = await analytics(api)
    assert figures["points"] == {"issued": 5 + 20 + 5 + 100, "redeemed": 10, "expired": 0}
    assert figures["redemptions"] == {"created": 2, "pending": 0, "fulfilled": 1, "cancelled": 1, "points": 20}
    # In a community: only what was earned there; the rest is program-wide.
    local = await analytics(api, community_id=str(here))
    assert local["points"] == {"issued": 25, "redeemed": 10, "expired": 0}
    assert local["community_id"] == str(here)

    # The invite's lot expires: the kept redemption spent 10 of its 20 (dated lots go first).
    db = system.state("rewards").db
    async with db.session() as session:
        query = sa.select(sa.func.max(LOTS.c.expires_at)).where(LOTS.c.member_id == mid, LOTS.c.expires_at < NEVER)
        expires = await session.scalar(query)
    async with db.session() as session:
        await expire_due_lots(session, expires + timedelta(seconds=1))
        await db.commit(session)
    window = {"from": z(datetime.now(UTC) - timedelta(days=1)), "to": z(expires + timedelta(days=1))}
    assert (await analytics(api, **window))["points"]["expired"] == 10
    # A window before any of it holds nothing.
    before = {"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}
    empty = await analytics(api, **before)
    assert empty["points"] == {"issued": 0, "redeemed": 0, "expired": 0}
    assert empty["redemptions"]["created"] == 0


async def test_the_window_is_checked_and_the_figures_are_for_staff(api: Api) -> None:
    async with api(ANALYST) as client:
        for params in (
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            {"from": "2026-01-01T00:00:00"},
            {"to": "0001-01-01T00:00:00Z"},
        ):
            response = await client.get("/v1/analytics/rewards", params=params)
            assert response.status_code == 422, (params, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    for identity in (staff("agent"), member(uuid.uuid4())):
        async with api(identity) as client:
            assert (await client.get("/v1/analytics/rewards")).status_code == 403
