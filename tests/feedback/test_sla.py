"""SLA: business-hours arithmetic (weekend, daylight saving), due times, and the breach job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa

from services.feedback.sla.calendar import Calendar, add_business_minutes, business_minutes_between
from services.feedback.sla.job import mark_breaches
from services.feedback.tickets.service import TICKETS
from tests.feedback.conftest import AGENT, Api, file_ticket, outbox
from tests.system import System, staff

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
BERLIN = Calendar("Europe/Berlin", WEEKDAYS, time(9), time(17))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_friday_night_is_not_breached_on_saturday() -> None:
    shanghai = Calendar("Asia/Shanghai", WEEKDAYS, time(9), time(18))
    friday_night = utc(2026, 11, 20, 14)  # 22:00 in Shanghai, Friday
    # 60 business minutes: Monday 09:00-10:00 local = 01:00-02:00 UTC.
    assert add_business_minutes(shanghai, friday_night, 60) == utc(2026, 11, 23, 2)
    assert business_minutes_between(shanghai, friday_night, utc(2026, 11, 23, 2)) == 60
    # Inside the day: Friday 10:00 local + 4 h = 14:00 local = 06:00 UTC.
    assert add_business_minutes(shanghai, utc(2026, 11, 20, 2), 240) == utc(2026, 11, 20, 6)
    # Spanning the weekend: Friday 16:00 local + 3 h = Monday 10:00 local.
    assert add_business_minutes(shanghai, utc(2026, 11, 20, 8), 180) == utc(2026, 11, 23, 2)


def test_daylight_saving_change_over_a_weekend() -> None:
    # Europe/Berlin springs forward on Sunday 2026-03-29 (UTC+1 -> UTC+2).
    friday_4pm = utc(2026, 3, 27, 15)  # 16:00 CET
    due = add_business_minutes(BERLIN, friday_4pm, 240)  # 1 h Friday, 3 h Monday
    assert due == utc(2026, 3, 30, 10)  # Monday 12:00 CEST is 10:00 UTC, not 11:00
    assert business_minutes_between(BERLIN, friday_4pm, due) == 240
    # ...and falls back on Sunday 2026-10-25 (UTC+2 -> UTC+1).
    assert add_business_minutes(BERLIN, utc(2026, 10, 23, 14), 240) == utc(2026, 10, 26, 11)
    # A window across the change keeps its wall-clock length: a full week is 5 x 8 h.
    week = business_minutes_between(BERLIN, utc(2026, 3, 23), utc(2026, 4, 4))
    assert week == 2 * 5 * 8 * 60


def test_a_start_in_a_dst_gap_moves_forward_by_the_gap() -> None:
    night = Calendar("Europe/Berlin", frozenset({7}), time(2, 30), time(4))  # 02:30 does not exist that Sunday
    # It opens at 03:30 CEST (01:30 UTC) and closes at 04:00 CEST: 30 minutes that day.
    assert add_business_minutes(night, utc(2026, 3, 28, 12), 30) == utc(2026, 3, 29, 2)


async def test_due_times_follow_the_policy_and_business_hours(system: System, api: Api) -> None:
    community = uuid.uuid4()
    async with api(staff("operator")) as client:
        hours = await client.put(
            f"/v1/communities/{community}/business-hours",
            json={"timezone": "Europe/Berlin", "days": [5, 1, 2, 3, 4], "start": "09:00", "end": "17:00"},
        )
        assert hours.status_code == 200, hours.text
        assert hours.json()["days"] == [1, 2, 3, 4, 5]
        bad = await client.put(
            f"/v1/communities/{community}/business-hours",
            json={"timezone": "Mars/Olympus", "days": [1], "start": "18:00", "end": "09:00"},
        )
        assert bad.status_code == 422
        policies = await client.put(
            "/v1/sla-policies",
            json={
                "items": [
                    {
                        "priority": "high",
                        "first_response_minutes": 60,
                        "resolution_minutes": 480,
                        "business_hours_only": True,
                    }
                ]
            },
        )
        assert policies.status_code == 200, policies.text
        assert [p["priority"] for p in policies.json()["items"]] == ["low", "normal", "high", "urgent"]
    async with api(AGENT) as client:
        assert (await client.get("/v1/sla-policies")).status_code == 200
        assert (await client.get(f"/v1/communities/{community}/business-hours")).json()["timezone"] == "Europe/Berlin"
    async with api(staff("reviewer")) as client:
        assert (await client.get("/v1/sla-policies")).status_code == 403
    ticket = await file_ticket(api, uuid.uuid4(), priority="high", community_id=str(community))
    created = datetime.fromisoformat(ticket["created_at"])
    calendar = Calendar("Europe/Berlin", WEEKDAYS, time(9), time(17))
    assert datetime.fromisoformat(ticket["sla"]["first_response_due_at"]) == add_business_minutes(calendar, created, 60)
    assert datetime.fromisoformat(ticket["sla"]["resolution_due_at"]) == add_business_minutes(calendar, created, 480)
    # A priority change recomputes from creation with the new policy (urgent: 30 min, 24/7 by default).
    async with api(AGENT) as client:
        urgent = (await client.patch(f"/v1/tickets/{ticket['id']}", json={"priority": "urgent"})).json()
    assert datetime.fromisoformat(urgent["sla"]["first_response_due_at"]) == created + timedelta(minutes=30)
    assert datetime.fromisoformat(urgent["sla"]["resolution_due_at"]) == created + timedelta(minutes=240)


async def _age(system: System, ticket_id: str, minutes: int, *, resolution_only: bool = False) -> None:
    """Move a ticket's clock into the past (its due times with it; or only the resolution due time)."""
    shift = sa.literal(timedelta(minutes=minutes), sa.Interval())
    values = {TICKETS.c.resolution_due_at: TICKETS.c.resolution_due_at - shift}
    if not resolution_only:
        values |= {
            TICKETS.c.created_at: TICKETS.c.created_at - shift,
            TICKETS.c.first_response_due_at: TICKETS.c.first_response_due_at - shift,
        }
    async with system.state("feedback").db.engine.begin() as conn:
        await conn.execute(TICKETS.update().where(TICKETS.c.id == uuid.UUID(ticket_id)).values(values))


async def _run_job(system: System) -> int:
    db = system.state("feedback").db
    async with db.session() as session:
        marked = await mark_breaches(session, datetime.now(UTC))
        await db.commit(session)
    return marked


async def test_breach_is_announced_once_per_due_time_even_with_two_replicas(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    tickets = [await file_ticket(api, lin, priority="urgent") for _ in range(30)]
    for ticket in tickets:
        await _age(system, ticket["id"], 31)  # past the 30-minute first response, not the 4 h resolution
    # Two job instances race on the same due tickets: each breach is marked once.
    first, second = await asyncio.gather(_run_job(system), _run_job(system))
    assert first + second == 30
    assert await _run_job(system) == 0
    breaches = await outbox(system, "feedback.sla_breached")
    assert sorted(e["ticket_id"] for e in breaches) == sorted(t["id"] for t in tickets)
    assert {e["target"] for e in breaches} == {"first_response"}
    async with api(AGENT) as client:
        flagged = (await client.get("/v1/tickets", params={"breached": "true", "limit": 100})).json()["items"]
    assert len(flagged) == 30
    assert all(t["sla"]["breached"] for t in flagged)
    # The resolution target breaches later, once; a reopen sets a new due time that may breach again.
    tid = tickets[0]["id"]
    await _age(system, tid, 300, resolution_only=True)
    assert await _run_job(system) == 1
    async with api(AGENT) as client:
        await client.post(f"/v1/tickets/{tid}/resolve")
        await client.post(f"/v1/tickets/{tid}/reopen")
    await _age(system, tid, 300, resolution_only=True)
    assert await _run_job(system) == 1
    assert await _run_job(system) == 0
    targets = [e["target"] for e in await outbox(system, "feedback.sla_breached") if e["ticket_id"] == tid]
    assert targets == ["first_response", "resolution", "resolution"]


async def test_a_first_response_in_time_is_no_breach(system: System, api: Api) -> None:
    ticket = await file_ticket(api, uuid.uuid4(), priority="urgent")
    async with api(AGENT) as client:
        await client.post(f"/v1/tickets/{ticket['id']}/comments", json={"body": "On it."})
    await _age(system, ticket["id"], 31)
    assert await _run_job(system) == 0
    async with system.state("feedback").db.engine.connect() as conn:
        breached = await conn.scalar(sa.select(TICKETS.c.breached).where(TICKETS.c.id == uuid.UUID(ticket["id"])))
    assert breached is False
