"""Publishing policy: quiet hours (wrapping midnight, in a zone with daylight saving), the
promotion cap per local day and the minimum gap, each a 422 naming the rule and the next
allowed time; the pure rules checked directly too."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.content.policy.rules import DEFAULT_POLICY, Booked, Policy, QuietHours, local_day_bounds, next_allowed
from tests.content.factories import OPERATOR, PROBLEMS, approved_post, create_community, schedule, set_policy, z
from tests.system import System, staff

MORNING = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def test_quiet_hours_wrap_midnight() -> None:
    quiet = QuietHours(time(23), time(8))
    assert [quiet.contains(time(h, m)) for h, m in ((23, 30), (0, 0), (7, 59), (8, 0), (22, 59))] == [
        True,
        True,
        True,
        False,
        False,
    ]
    daytime = QuietHours(time(12), time(14))
    assert [daytime.contains(time(h)) for h in (13, 14, 11)] == [True, False, False]
    assert not QuietHours(time(9), time(9)).contains(time(9))


def test_local_days_and_quiet_ends_follow_daylight_saving() -> None:
    new_york = ZoneInfo("America/New_York")
    start, end = local_day_bounds(datetime(2030, 3, 10, 15, tzinfo=UTC), new_york)  # spring forward that day
    assert (start, end - start) == (datetime(2030, 3, 10, 5, tzinfo=UTC), timedelta(hours=23))
    start, end = local_day_bounds(datetime(2030, 11, 3, 15, tzinfo=UTC), new_york)  # fall back
    assert end - start == timedelta(hours=25)
    policy = Policy(QuietHours(time(22), time(7)), 2, timedelta(minutes=60))
    # 05:00 EDT, after the jump: quiet until 07:00 EDT = 11:00 UTC (12:00 UTC without DST).
    at = datetime(2030, 3, 10, 9, tzinfo=UTC)
    assert next_allowed(at, new_york, policy, [], promotion=False) == datetime(2030, 3, 10, 11, tzinfo=UTC)
    # Quiet hours ending inside the skipped hour (02:30) end at the first instant after it.
    gap = Policy(QuietHours(time(1), time(2, 30)), 2, timedelta(0))
    assert next_allowed(datetime(2030, 3, 10, 6, 30, tzinfo=UTC), new_york, gap, [], promotion=False) == datetime(
        2030, 3, 10, 7, 0, tzinfo=UTC
    )


def test_next_allowed_combines_rules() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    booked = [Booked(MORNING, True), Booked(MORNING + timedelta(hours=2), True)]
    # Cap reached for the local day: next local midnight (16:00 UTC), quiet until 08:00 local (00:00 UTC).
    assert next_allowed(MORNING + timedelta(hours=5), shanghai, DEFAULT_POLICY, booked, promotion=True) == datetime(
        2030, 1, 8, 0, tzinfo=UTC
    )
    # Not a promotion: only the gap to the 04:00 UTC post matters.
    assert next_allowed(
        MORNING + timedelta(hours=2, minutes=30), shanghai, DEFAULT_POLICY, booked, promotion=False
    ) == MORNING + timedelta(hours=3)


async def test_scheduling_inside_quiet_hours_that_wrap_midnight(system: System) -> None:
    community_id = await create_community(system)  # Asia/Shanghai, default policy 23:00-08:00
    post_id = await approved_post(system, community_id)
    midnight = datetime(2030, 1, 7, 16, 0, tzinfo=UTC)  # 00:00 local
    refused = await schedule(system, post_id, midnight)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == PROBLEMS + "quiet-hours"
    assert problem["next_allowed_at"] == "2030-01-08T00:00:00Z"
    assert "2030-01-08T00:00:00Z" in problem["detail"]
    late = await schedule(system, post_id, datetime(2030, 1, 7, 15, 30, tzinfo=UTC))  # 23:30 local
    assert late.json()["next_allowed_at"] == "2030-01-08T00:00:00Z"
    assert (await schedule(system, post_id, datetime(2030, 1, 7, 14, 59, tzinfo=UTC))).status_code == 200


async def test_quiet_hours_in_a_zone_with_daylight_saving(system: System) -> None:
    community_id = await create_community(system, "America/New_York")
    await set_policy(system, community_id, quiet_hours={"start": "22:00", "end": "07:00"})
    post_id = await approved_post(system, community_id)
    refused = await schedule(system, post_id, datetime(2030, 3, 10, 9, tzinfo=UTC))  # 05:00 EDT
    assert (refused.json()["type"], refused.json()["next_allowed_at"]) == (
        PROBLEMS + "quiet-hours",
        "2030-03-10T11:00:00Z",
    )
    winter = await schedule(system, post_id, datetime(2030, 3, 9, 10, tzinfo=UTC))  # 05:00 EST, the day before
    assert winter.json()["next_allowed_at"] == "2030-03-09T12:00:00Z"
    assert (await schedule(system, post_id, datetime(2030, 3, 10, 11, tzinfo=UTC))).status_code == 200


async def test_promotion_cap_per_local_day(system: System) -> None:
    community_id = await create_community(system)
    await set_policy(system, community_id, max_promotions_per_day=1, min_gap_minutes=0)
    first = await approved_post(system, community_id, "promotion")
    second = await approved_post(system, community_id, "promotion")
    announcement = await approved_post(system, community_id)
    assert (await schedule(system, first, MORNING)).status_code == 200
    refused = await schedule(system, second, MORNING + timedelta(hours=5))
    assert refused.status_code == 422
    assert refused.json()["type"] == PROBLEMS + "promotion-cap"
    assert refused.json()["next_allowed_at"] == "2030-01-08T00:00:00Z"  # next local day, after quiet hours
    assert (await schedule(system, announcement, MORNING + timedelta(hours=5))).status_code == 200  # not capped
    assert (await schedule(system, second, datetime(2030, 1, 8, 0, tzinfo=UTC))).status_code == 200
    async with await system.client(OPERATOR) as op:
        assert (await op.post(f"/v1/posts/{first}/cancel")).status_code == 200  # frees the day again
    third = await approved_post(system, community_id, "promotion")
    assert (await schedule(system, third, MORNING + timedelta(hours=3))).status_code == 200


async def test_minimum_gap_between_posts(system: System) -> None:
    community_id = await create_community(system)
    first, second = await approved_post(system, community_id), await approved_post(system, community_id)
    assert (await schedule(system, first, MORNING)).status_code == 200
    for at in (MORNING + timedelta(minutes=30), MORNING - timedelta(minutes=59)):
        refused = await schedule(system, second, at)
        assert (refused.status_code, refused.json()["type"]) == (422, PROBLEMS + "min-gap")
        assert refused.json()["next_allowed_at"] == z(MORNING + timedelta(hours=1))
    assert (await schedule(system, second, MORNING - timedelta(hours=1))).status_code == 200


async def test_policy_endpoints(system: System) -> None:
    community_id = await create_community(system, "Europe/Berlin")
    async with await system.client(OPERATOR) as op:
        default = (await op.get(f"/v1/communities/{community_id}/publishing-policy")).json()
        assert default == {
            "community_id": community_id,
            "quiet_hours": {"start": "23:00", "end": "08:00"},
            "max_promotions_per_day": 2,
            "min_gap_minutes": 60,
            "timezone": "Europe/Berlin",
            "is_default": True,
        }
        for bad in (
            {"quiet_hours": {"start": "25:00", "end": "08:00"}, "max_promotions_per_day": 1, "min_gap_minutes": 0},
            {"quiet_hours": None, "max_promotions_per_day": -1, "min_gap_minutes": 0},
        ):
            assert (await op.put(f"/v1/communities/{community_id}/publishing-policy", json=bad)).status_code == 422
    changed = await set_policy(system, community_id, quiet_hours=None, min_gap_minutes=15)
    assert (changed["quiet_hours"], changed["min_gap_minutes"], changed["is_default"]) == (None, 15, False)
    async with await system.client(staff("reviewer")) as rev:
        assert (await rev.get(f"/v1/communities/{community_id}/publishing-policy")).status_code == 403
