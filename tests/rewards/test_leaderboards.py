"""Leaderboards: by community and period in its time zone, deterministic ties, the caller's own rank."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.rewards.conftest import Api
from tests.rewards.factories import activity, deliver, erased, local_today
from tests.system import System, member, staff


async def board(api: Api, community: uuid.UUID, identity=None, **params):  # type: ignore[no-untyped-def]
    async with api(identity or staff("operator")) as client:
        response = await client.get("/v1/leaderboards", params={"community_id": str(community)} | params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_ranking_with_ties_broken_by_who_got_there_first(system: System, api: Api) -> None:
    community = uuid.uuid4()
    early, late, top, low = (uuid.uuid4() for _ in range(4))
    now = datetime.now(UTC)
    await deliver(system, activity(early, community, "invite_accepted", at=now - timedelta(minutes=30)))
    await deliver(system, activity(late, community, "invite_accepted", at=now - timedelta(minutes=10)))
    await deliver(
        system, *[activity(top, community, "invite_accepted", at=now - timedelta(minutes=5)) for _ in range(2)]
    )
    await deliver(system, activity(low, community, "check_in", at=now - timedelta(minutes=1)))
    await deliver(system, activity(low, uuid.uuid4(), "invite_accepted"))  # another community
    result = await board(api, community, period="all")
    assert [(i["rank"], i["member_id"], i["points"]) for i in result["items"]] == [
        (1, str(top), 40),
        (2, str(early), 20),
        (3, str(late), 20),
        (4, str(low), 5),
    ]
    assert "me" not in result or result["me"] is None
    mine = await board(api, community, identity=member(late), period="all", limit=2)
    assert len(mine["items"]) == 2
    assert mine["me"] == {"rank": 3, "points": 20}
    outsider = await board(api, community, identity=member(uuid.uuid4()), period="all")
    assert outsider["me"] == {"rank": None, "points": 0}


async def test_periods_follow_local_dates(system: System, api: Api) -> None:
    community, mid = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    last_week = today - timedelta(days=7)
    last_month = today.replace(day=1) - timedelta(days=1)
    await deliver(
        system,
        activity(mid, community, "invite_accepted", local_date=today),
        activity(mid, community, "invite_accepted", local_date=last_week),
        activity(mid, community, "invite_accepted", local_date=last_month),
    )
    week, month, all_time = [await board(api, community, period=p) for p in ("week", "month", "all")]
    monday = today - timedelta(days=today.weekday())
    assert week["items"][0]["points"] == 20 * (1 + (last_month >= monday))
    assert week["period_start"] == monday.isoformat()
    assert month["items"][0]["points"] == 20 * (1 + (last_week.month == today.month))
    assert month["period_start"] == today.replace(day=1).isoformat()
    assert all_time["items"][0]["points"] == 60


async def test_leaderboard_validation(api: Api) -> None:
    async with api(staff("operator")) as client:
        assert (
            await client.get("/v1/leaderboards", params={"community_id": str(uuid.uuid4()), "period": "year"})
        ).status_code == 422
        assert (await client.get("/v1/leaderboards", params={"period": "week"})).status_code == 422
        assert (
            await client.get("/v1/leaderboards", params={"community_id": str(uuid.uuid4()), "limit": 0})
        ).status_code == 422
        empty = await client.get("/v1/leaderboards", params={"community_id": str(uuid.uuid4())})
        assert empty.json()["items"] == []


async def test_erased_members_leave_the_leaderboards(system: System, api: Api) -> None:
    community, gone, stays = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(system, activity(gone, community, "invite_accepted"), activity(stays, community, "check_in"))
    await deliver(system, erased(gone))
    result = await board(api, community, period="all")
    assert [i["member_id"] for i in result["items"]] == [str(stays)]
