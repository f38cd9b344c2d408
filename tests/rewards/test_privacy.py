"""A member's export, and erasure: pseudonymized, ledger kept balanced, nothing more earned."""

from __future__ import annotations

import uuid

from tests.rewards.conftest import Api
from tests.rewards.factories import activity, assert_ledger_balanced, deliver, earn, erased
from tests.system import System, member, staff


async def test_export_holds_the_members_rewards_data(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    await deliver(system, activity(mid, community), activity(mid, community, "invite_accepted"))
    async with api(staff("operator")) as client:
        await client.post("/v1/points/adjustments", json={"member_id": str(mid), "delta": 5, "reason": "thanks"})
    async with system.direct("rewards", member(mid)) as client:
        response = await client.get(f"/internal/members/{mid}/export")
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["points"]["balance"] == 30
    assert len(export["ledger"]) == 3
    assert export["activity_counts"] == {"check_in": 1, "invite_accepted": 1}
    assert len(export["check_in_days"]) == 1
    assert export["adjustments"][0]["reason"] == "thanks"
    async with system.direct("rewards", member(uuid.uuid4())) as client:
        assert (await client.get(f"/internal/members/{mid}/export")).status_code == 404
    async with system.direct("rewards", staff("operator")) as client:
        assert (await client.get(f"/internal/members/{mid}/export")).status_code == 403
    async with system.direct("rewards", staff("admin")) as client:
        assert (await client.get(f"/internal/members/{mid}/export")).status_code == 200


async def test_erasure_pseudonymizes_and_keeps_the_ledger_balanced(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    await earn(system, mid, 100, community)
    async with api(staff("operator")) as client:
        await client.post(
            "/v1/points/adjustments", json={"member_id": str(mid), "delta": 5, "reason": "called from 555-0100"}
        )
        reward = (await client.post("/v1/rewards", json={"name": "Mug", "cost": 30, "stock": 2})).json()
    async with api(member(mid)) as client:
        pending = (await client.post("/v1/redemptions", json={"reward_id": reward["id"]})).json()
    event = erased(mid)
    assert await deliver(system, event, event) == {"applied": 1, "duplicates": 1}
    async with system.direct("rewards", staff("admin")) as client:
        export = (await client.get(f"/internal/members/{mid}/export")).json()
        redemption = (await client.get(f"/v1/redemptions/{pending['id']}")).json()
    assert export["erased_at"] is not None
    assert export["adjustments"][0]["reason"] == "[erased]"
    assert redemption["status"] == "cancelled"
    assert await assert_ledger_balanced(system, mid) == 105
    # Nothing more is earned or redeemed; a second erasure changes nothing.
    await deliver(system, activity(mid, community, "invite_accepted"))
    await deliver(system, erased(mid))
    async with system.direct("rewards", staff("admin")) as client:
        assert (await client.get(f"/internal/members/{mid}/export")).json()["points"]["balance"] == 105
    # An erased member is gone for every public reader of points and badges (as in members).
    async with api(staff("operator")) as client:
        for path in ("points", "points/ledger", "badges"):
            assert (await client.get(f"/v1/members/{mid}/{path}")).status_code == 404
    async with api(member(mid)) as client:
        refused = await client.post("/v1/redemptions", json={"reward_id": reward["id"]})
    assert refused.status_code == 409
    assert refused.json()["type"] == "https://qunyun.dev/problems/member-erased"
