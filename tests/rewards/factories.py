"""Small helpers for rewards tests: activity events, delivery, ledger invariants."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.common.identity import SYSTEM
from services.rewards.earning.service import apply_activity_batch
from tests.system import System, staff

SHANGHAI = "Asia/Shanghai"


def local_today(timezone: str = SHANGHAI) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()


def activity(
    member_id: uuid.UUID,
    community_id: uuid.UUID,
    type: str = "check_in",
    *,
    local_date: date | None = None,
    timezone: str = SHANGHAI,
    event_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An `activity.recorded` envelope as members' relay sends it."""
    day = local_date or local_today(timezone)
    occurred = at or datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(timezone)) + timedelta(hours=12)
    stamp = occurred.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": "activity.recorded",
        "source": "members",
        "occurred_at": stamp,
        "data": {
            "activity_id": str(uuid.uuid4()),
            "member_id": str(member_id),
            "community_id": str(community_id),
            "type": type,
            "occurred_at": stamp,
            "local_date": day.isoformat(),
            "timezone": timezone,
            "properties": {},
        },
    }


def erased(member_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": "member.erased",
        "source": "members",
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"member_id": str(member_id), "erased_at": datetime.now(UTC).isoformat()},
    }


async def deliver(system: System, *events: dict[str, Any]) -> dict[str, Any]:
    """Post events to rewards' /internal/events as a relay does."""
    async with system.direct("rewards", SYSTEM) as client:
        response = await client.post("/internal/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def earn(system: System, member_id: uuid.UUID, points: int, community_id: uuid.UUID | None = None) -> None:
    """Give a member `points` through `invite_accepted` (20 each, uncapped) and check-ins (5)."""
    community_id = community_id or uuid.uuid4()
    invites, rest = divmod(points, 20)
    assert rest % 5 == 0, "earn() works in steps of 5"
    events = [activity(member_id, community_id, "invite_accepted") for _ in range(invites)]
    events += [
        activity(member_id, community_id, "check_in", local_date=local_today() - timedelta(days=400 + i))
        for i in range(rest // 5)
    ]
    await deliver(system, *events)


async def rewards_events(system: System, event_type: str) -> list[dict[str, Any]]:
    """The data of every event of this type in rewards' outbox, oldest first (a batch row's
    events in their order)."""
    outbox = system.state("rewards").outbox.tables.outbox
    async with system.state("rewards").db.session() as session:
        rows = await session.execute(
            sa.select(outbox.c.data, outbox.c.batch_size).where(outbox.c.type == event_type).order_by(outbox.c.seq)
        )
        return [event for row in rows for event in ([e["data"] for e in row.data] if row.batch_size else [row.data])]


async def assert_ledger_balanced(system: System, member_id: uuid.UUID) -> int:
    """Balance == sum of entries == points left in lots; each entry's balance_after chains."""
    from services.rewards.points.service import ACCOUNTS, ENTRIES, LOTS

    async with system.state("rewards").db.session() as session:
        balance = await session.scalar(sa.select(ACCOUNTS.c.balance).where(ACCOUNTS.c.member_id == member_id)) or 0
        entries = (
            await session.execute(
                sa.select(ENTRIES.c.seq, ENTRIES.c.delta, ENTRIES.c.balance_after)
                .where(ENTRIES.c.member_id == member_id)
                .order_by(ENTRIES.c.seq)
            )
        ).all()
        in_lots = await session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LOTS.c.remaining), 0)).where(LOTS.c.member_id == member_id)
        )
    running = 0
    for index, entry in enumerate(entries, start=1):
        running += entry.delta
        assert entry.seq == index
        assert entry.balance_after == running >= 0
    assert running == balance == in_lots
    return int(balance)


async def apply_directly(system: System, *events: dict[str, Any]) -> None:
    """Call the batch handler with a session (the other real path), committing like a request."""
    from services.common.contracts.activity import ActivityRecorded
    from services.common.events import Event, EventEnvelope

    envelopes = [EventEnvelope.model_validate(e) for e in events]
    parsed = [Event(e.id, e.type, e.source, e.occurred_at, ActivityRecorded.parse(e.data)) for e in envelopes]
    db = system.state("rewards").db
    async with db.session() as session:
        await apply_activity_batch(session, parsed)
        await db.commit(session)


async def points_of(api: Any, member_id: uuid.UUID) -> dict[str, Any]:
    """GET the member's points as an operator."""
    async with api(staff("operator")) as client:
        response = await client.get(f"/v1/members/{member_id}/points")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
