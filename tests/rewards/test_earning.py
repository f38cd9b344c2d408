"""Earning: rules applied once per (event, rule), daily caps by local day, streaks, levels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.common.events import EventEnvelope, apply_events
from services.common.identity import SYSTEM
from services.gateway.db import kit_tables as gateway_tables
from services.rewards.db import kit_tables
from services.rewards.earning.service import COMMUNITIES
from services.rewards.events import EVENT_HANDLERS
from tests.rewards.conftest import Api
from tests.rewards.factories import (
    SHANGHAI,
    activity,
    apply_directly,
    assert_ledger_balanced,
    deliver,
    local_today,
    points_of,
    rewards_events,
)
from tests.system import System, member, staff

OPERATOR = staff("operator")


async def test_default_program_is_in_force(api: Api) -> None:
    async with api(OPERATOR) as client:
        rules = (await client.get("/v1/rewards/rules")).json()
        levels = (await client.get("/v1/rewards/levels")).json()
    by_type = {rule["event_type"]: rule for rule in rules}
    assert by_type["check_in"]["points"] == 5
    assert (by_type["message_sent"]["points"], by_type["message_sent"]["daily_cap"]) == (1, 20)
    assert by_type["invite_accepted"]["daily_cap"] is None
    assert (by_type["suggestion_completed"]["points"], by_type["suggestion_completed"]["daily_cap"]) == (50, None)
    assert len(rules) == 8
    assert [lv["name"] for lv in levels] == ["Newcomer", "Regular", "Active", "Core", "Legend"]
    assert levels[0]["min_lifetime_points"] == 0


async def test_check_in_awards_points_with_a_ledger_entry_and_event(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    event = activity(mid, community)
    assert await deliver(system, event) == {"applied": 1, "duplicates": 0}
    points = await points_of(api, mid)
    assert (points["balance"], points["lifetime"], points["streak_days"]) == (5, 5, 1)
    assert points["level"] == {"name": "Newcomer", "next_name": "Regular", "next_at": 100}
    async with api(member(mid)) as client:
        ledger = (await client.get(f"/v1/members/{mid}/points/ledger")).json()
    (entry,) = ledger["items"]
    assert entry["delta"] == 5
    assert entry["balance_after"] == 5
    assert entry["reason"] == "earned:check_in"
    assert entry["source_event_id"] == event["data"]["activity_id"]
    (awarded,) = await rewards_events(system, "rewards.points_awarded")
    assert awarded["member_id"] == str(mid)
    assert awarded["points"] == 5
    assert awarded["source_event_id"] == event["data"]["activity_id"]


async def test_the_same_event_delivered_twice_awards_once(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    event = activity(mid, community, "invite_accepted")
    assert await deliver(system, event, event) == {"applied": 1, "duplicates": 1}
    assert await deliver(system, event) == {"applied": 0, "duplicates": 1}
    await apply_directly(system, activity(mid, community, "invite_accepted"))
    assert (await points_of(api, mid))["balance"] == 40
    assert len(await rewards_events(system, "rewards.points_awarded")) == 2
    assert await assert_ledger_balanced(system, mid) == 40


async def test_kit_inbox_path_with_per_event_handlers_gives_the_same_result(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    events = [EventEnvelope.model_validate(activity(mid, community, "message_sent")) for _ in range(3)]
    db = system.state("rewards").db
    async with db.session() as session:
        result = await apply_events(session, kit_tables, EVENT_HANDLERS, [*events, events[0]])
        await db.commit(session)
    assert (result.applied, result.duplicates) == (3, 1)
    assert (await points_of(api, mid))["balance"] == 3


async def test_daily_cap_applies_per_member_and_local_day(system: System, api: Api) -> None:
    mid, other, community = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, *[activity(mid, community, "message_sent", local_date=today) for _ in range(25)])
    assert (await points_of(api, mid))["balance"] == 20
    # A later batch the same day earns nothing more; the next local day starts afresh.
    await deliver(system, activity(mid, community, "message_sent", local_date=today))
    await deliver(
        system, *[activity(mid, community, "message_sent", local_date=today + timedelta(days=1)) for _ in range(3)]
    )
    await deliver(system, activity(other, community, "message_sent", local_date=today))
    assert (await points_of(api, mid))["balance"] == 23
    assert (await points_of(api, other))["balance"] == 1
    await assert_ledger_balanced(system, mid)


async def test_cap_follows_the_community_local_day_not_utc(system: System, api: Api) -> None:
    """22:00 and 23:30 UTC on one UTC day are two local days in Shanghai (UTC+8)."""
    mid, community = uuid.uuid4(), uuid.uuid4()
    first = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 on March 1 in Shanghai
    second = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on March 2 in Shanghai
    day1 = first.astimezone(ZoneInfo(SHANGHAI)).date()
    day2 = second.astimezone(ZoneInfo(SHANGHAI)).date()
    assert first.date() == second.date()
    assert day2 == day1 + timedelta(days=1)
    await deliver(
        system,
        activity(mid, community, "check_in", local_date=day1, at=first),
        activity(mid, community, "check_in", local_date=day1, at=first + timedelta(minutes=5)),
        activity(mid, community, "check_in", local_date=day2, at=second),
    )
    assert (await points_of(api, mid))["balance"] == 10  # one check-in a local day


async def test_every_matching_rule_applies_once_and_community_rules_only_there(system: System, api: Api) -> None:
    mid, special, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with api(OPERATOR) as client:
        response = await client.put(
            "/v1/rewards/rules",
            json=[
                {"event_type": "check_in", "points": 5, "daily_cap": 5},
                {"event_type": "check_in", "points": 7, "community_id": str(special)},
            ],
        )
    assert response.status_code == 200, response.text
    await deliver(system, activity(mid, special), activity(mid, elsewhere))
    assert (await points_of(api, mid))["balance"] == 5 + 7
    async with api(OPERATOR) as client:
        ledger = (await client.get(f"/v1/members/{mid}/points/ledger")).json()["items"]
    assert sorted(e["delta"] for e in ledger) == [5, 7]


async def test_replacing_rules_keeps_ids_and_deactivates_missing(api: Api) -> None:
    async with api(OPERATOR) as client:
        before = {r["event_type"]: r["id"] for r in (await client.get("/v1/rewards/rules")).json()}
        response = await client.put(
            "/v1/rewards/rules",
            json=[
                {"event_type": "check_in", "points": 8, "daily_cap": 8, "expires_in_days": 30},
                {"event_type": "quiz_passed", "points": 15},
            ],
        )
        assert response.status_code == 200
        after = {r["event_type"]: r for r in response.json()}
        assert set(after) == {"check_in", "quiz_passed"}
        assert after["check_in"]["id"] == before["check_in"]
        assert after["check_in"]["expires_in_days"] == 30
        assert (await client.get("/v1/rewards/rules")).json() == response.json()


async def test_rules_are_validated_and_nothing_changes(api: Api) -> None:
    bad_bodies = [
        [{"event_type": "check_in", "points": 0}],
        [{"event_type": "check_in", "points": 5, "daily_cap": 3}],
        [{"event_type": "check_in", "points": 5}, {"event_type": "check_in", "points": 6}],
        [{"event_type": "Check In", "points": 5}],
        [{"event_type": "check_in", "points": 5, "expires_in_days": 0}],
        [{"event_type": "check_in", "points": 5, "bonus": 1}],
        {"event_type": "check_in", "points": 5},
    ]
    async with api(OPERATOR) as client:
        before = (await client.get("/v1/rewards/rules")).json()
        for body in bad_bodies:
            response = await client.put("/v1/rewards/rules", json=body)
            assert response.status_code == 422, body
            assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/rewards/rules")).json() == before


async def test_levels_are_validated(api: Api) -> None:
    bad_bodies = [
        [],
        [{"name": "A", "min_lifetime_points": 10}],
        [{"name": "A", "min_lifetime_points": 0}, {"name": "B", "min_lifetime_points": 0}],
        [
            {"name": "A", "min_lifetime_points": 0},
            {"name": "B", "min_lifetime_points": 50},
            {"name": "C", "min_lifetime_points": 20},
        ],
        [{"name": "A", "min_lifetime_points": 0}, {"name": "a", "min_lifetime_points": 20}],
        [{"name": "", "min_lifetime_points": 0}],
    ]
    async with api(OPERATOR) as client:
        for body in bad_bodies:
            assert (await client.put("/v1/rewards/levels", json=body)).status_code == 422, body
        good = [{"name": "Seed", "min_lifetime_points": 0}, {"name": "Tree", "min_lifetime_points": 50}]
        response = await client.put("/v1/rewards/levels", json=good)
        assert response.status_code == 200
        assert response.json() == good
        assert (await client.get("/v1/rewards/levels")).json() == good


async def test_configuration_is_for_operators(api: Api) -> None:
    for identity in (member(uuid.uuid4()), staff("agent")):
        async with api(identity) as client:
            assert (await client.put("/v1/rewards/rules", json=[])).status_code == 403
            assert (await client.put("/v1/rewards/levels", json=[])).status_code == 403


async def test_level_changes_fire_once_per_crossing_and_follow_lifetime(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    await deliver(system, *[activity(mid, community, "invite_accepted") for _ in range(4)])  # 80
    assert await rewards_events(system, "rewards.level_changed") == []
    await deliver(system, activity(mid, community, "invite_accepted"), activity(mid, community, "invite_accepted"))
    await deliver(system, activity(mid, community, "invite_accepted"))  # 140: still Regular
    (changed,) = await rewards_events(system, "rewards.level_changed")
    assert (changed["member_id"], changed["previous_level"], changed["level"]) == (str(mid), "Newcomer", "Regular")
    async with api(OPERATOR) as client:
        spent = await client.post(
            "/v1/points/adjustments", json={"member_id": str(mid), "delta": -100, "reason": "test"}
        )
        assert spent.status_code == 201
    points = await points_of(api, mid)
    assert (points["balance"], points["lifetime"]) == (40, 140)
    assert points["level"] == {"name": "Regular", "next_name": "Active", "next_at": 500}
    assert len(await rewards_events(system, "rewards.level_changed")) == 1


async def test_check_in_streaks_count_consecutive_local_days(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=2)))
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=1)))
    await deliver(system, activity(mid, community, local_date=today), activity(mid, community, local_date=today))
    points = await points_of(api, mid)
    assert points["streak_days"] == 3  # the second check-in today does not count twice
    assert points["balance"] == 15


async def test_a_missed_day_resets_the_streak(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=4)))
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=3)))
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=1)))
    assert (await points_of(api, mid))["streak_days"] == 1
    await deliver(system, activity(mid, community, local_date=today))
    assert (await points_of(api, mid))["streak_days"] == 2


async def test_a_streak_not_extended_since_yesterday_reads_as_zero(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, *[activity(mid, community, local_date=today - timedelta(days=d)) for d in (5, 4, 3)])
    assert (await points_of(api, mid))["streak_days"] == 0


async def test_late_check_in_days_join_the_streak(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    today = local_today()
    await deliver(system, activity(mid, community, local_date=today))
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=2)))  # late, leaves a gap
    assert (await points_of(api, mid))["streak_days"] == 1
    await deliver(system, activity(mid, community, local_date=today - timedelta(days=1)))  # fills the gap
    assert (await points_of(api, mid))["streak_days"] == 3
    # Several days in one batch, out of order.
    other = uuid.uuid4()
    await deliver(system, *[activity(other, community, local_date=today - timedelta(days=d)) for d in (0, 3, 1, 2)])
    assert (await points_of(api, other))["streak_days"] == 4


async def test_an_event_that_breaks_its_contract_is_named_and_leaves_the_rest_deliverable(
    system: System, api: Api
) -> None:
    """The relay re-sends the others at once and retries (then parks) the named one."""
    mid, community = uuid.uuid4(), uuid.uuid4()
    good = activity(mid, community, "invite_accepted")
    broken = activity(mid, community)
    broken["data"]["timezone"] = "Mars/Olympus"
    missing = activity(mid, community)
    del missing["data"]["member_id"]
    for bad in (broken, missing):
        async with system.direct("rewards", SYSTEM) as client:
            response = await client.post("/internal/events", json={"events": [good, bad]})
        assert response.status_code == 500
        assert (response.json()["event_id"], response.json()["index"]) == (bad["id"], 1)
        assert "activity.recorded" in response.json()["detail"]
    assert (await points_of(api, mid))["balance"] == 0  # the batch was rolled back whole
    assert await deliver(system, good) == {"applied": 1, "duplicates": 0}
    assert (await points_of(api, mid))["balance"] == 20


async def test_unknown_activity_types_earn_nothing_unless_a_rule_names_them(system: System, api: Api) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    await deliver(system, activity(mid, community, "webinar_watched"))
    assert (await points_of(api, mid))["balance"] == 0
    async with api(OPERATOR) as client:
        await client.put("/v1/rewards/rules", json=[{"event_type": "webinar_watched", "points": 4}])
    await deliver(system, activity(mid, community, "webinar_watched"))
    assert (await points_of(api, mid))["balance"] == 4


async def test_only_relays_post_events(system: System) -> None:
    async with system.direct("rewards", staff("admin")) as client:
        response = await client.post("/internal/events", json={"events": []})
    assert response.status_code == 403


async def test_a_batchs_awards_are_one_outbox_row_delivered_as_one_event_each(system: System) -> None:
    """Many awards in one transaction are one batch outbox row (one pending row per
    subscriber); the relay posts each award as its own event, with its own id."""
    first, second, community = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sent = [activity(first, community, "invite_accepted") for _ in range(2)]
    sent.append(activity(second, community, "invite_accepted"))
    await deliver(system, *sent)
    outbox, pending = kit_tables.outbox, kit_tables.outbox_pending
    async with system.state("rewards").db.session() as session:
        (row,) = (await session.execute(sa.select(outbox).where(outbox.c.type == "rewards.points_awarded"))).all()
        routes = (await session.execute(sa.select(pending.c.subscriber).where(pending.c.event_id == row.id))).all()
    assert row.batch_size == 3
    assert [route.subscriber for route in routes] == ["gateway"]
    awards = await rewards_events(system, "rewards.points_awarded")
    assert [(a["member_id"], a["points"], a["balance"]) for a in awards] == [
        (str(first), 20, 20),
        (str(first), 20, 40),
        (str(second), 20, 20),
    ]
    assert [a["source_event_id"] for a in awards] == [e["data"]["activity_id"] for e in sent]
    event_ids = {uuid.UUID(e["id"]) for e in row.data}
    assert len(event_ids) == 3
    assert row.id not in event_ids
    await system.drain()
    async with system.state("gateway").db.session() as session:
        received = set((await session.scalars(sa.select(gateway_tables.inbox.c.event_id))).all())
    assert event_ids <= received
    async with system.state("rewards").db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(pending)) == 0


async def test_a_communitys_zone_is_recorded_and_follows_its_latest_activity(system: System) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()

    async def recorded() -> tuple[str, datetime]:
        async with system.state("rewards").db.session() as session:
            row = (await session.execute(sa.select(COMMUNITIES).where(COMMUNITIES.c.id == community))).one()
        return row.timezone, row.updated_at

    await deliver(system, activity(mid, community, "message_sent"))
    zone, first_seen = await recorded()
    assert zone == SHANGHAI
    await deliver(system, activity(mid, community, "message_sent"))
    assert await recorded() == (SHANGHAI, first_seen)  # the same zone: the row is left alone
    await deliver(system, activity(mid, community, "message_sent", timezone="America/New_York"))
    zone, changed_at = await recorded()
    assert zone == "America/New_York"
    assert changed_at > first_seen
