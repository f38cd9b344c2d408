"""Filing caches the support settings, SLA policies and business hours per process
(`tickets/config.py`): a change made anywhere reaches the very next filing, and an unchanged
config costs the filing no read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from services.feedback.sla import service as sla_service
from services.feedback.sla.calendar import Calendar, add_business_minutes
from services.feedback.tickets import service as tickets_service
from services.feedback.tickets.config import SupportConfigCache
from tests.feedback.conftest import AGENT, Api, file_ticket
from tests.system import System, staff

CONFIG_READ = "array_agg(priority"  # the config's one statement (tickets/config.py)


async def _elsewhere(system: System, statement: str, **values: Any) -> None:
    """A change made by another replica: straight in the database, past this process's cache."""
    async with system.state("feedback").db.engine.begin() as conn:
        await conn.execute(sa.text(statement), values)


def _due(ticket: dict[str, Any]) -> tuple[timedelta, timedelta]:
    created = datetime.fromisoformat(ticket["created_at"])
    sla = ticket["sla"]
    return (
        datetime.fromisoformat(sla["first_response_due_at"]) - created,
        datetime.fromisoformat(sla["resolution_due_at"]) - created,
    )


@contextmanager
def _statements(system: System) -> Iterator[list[str]]:
    """Every statement the feedback process sends meanwhile: through SQLAlchemy's engine, and
    on the atomic pool (a filing that is its own transaction), in the order they start."""
    db = system.state("feedback").db
    engine = db.engine.sync_engine
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    atomic = db.atomic

    @asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        async with atomic() as connection:
            yield _Recording(connection, seen)

    sa.event.listen(engine, "before_cursor_execute", record)
    db.atomic = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del db.atomic  # the class's method again
        sa.event.remove(engine, "before_cursor_execute", record)


class _Recording:
    """An atomic-pool connection that notes each statement's text before running it."""

    def __init__(self, connection: Any, seen: list[str]) -> None:
        self._connection, self._seen = connection, seen

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._seen.append(sql)
        return await self._connection.fetchrow(sql, *args)


async def test_a_change_made_anywhere_reaches_the_next_filing(system: System, api: Api) -> None:
    community, lin = uuid.uuid4(), uuid.uuid4()
    first = await file_ticket(api, lin, priority="high", community_id=str(community))
    assert _due(first) == (timedelta(minutes=60), timedelta(minutes=480))  # the defaults, now cached
    await _elsewhere(
        system,
        "INSERT INTO sla_policies (priority, first_response_minutes, resolution_minutes, business_hours_only, "
        "updated_at) VALUES ('high', 15, 90, false, now())",
    )
    second = await file_ticket(api, lin, priority="high", community_id=str(community))
    assert _due(second) == (timedelta(minutes=15), timedelta(minutes=90))
    # Business hours for the community, and the policy counting them: both from elsewhere.
    await _elsewhere(
        system,
        'INSERT INTO business_hours (community_id, timezone, days, start, "end", updated_at) '
        "VALUES (:community, 'Europe/Berlin', '{1,2,3,4,5}', '09:00', '17:00', now())",
        community=community,
    )
    await _elsewhere(system, "UPDATE sla_policies SET business_hours_only = true WHERE priority = 'high'")
    third = await file_ticket(api, lin, priority="high", community_id=str(community))
    created = datetime.fromisoformat(third["created_at"])
    berlin = Calendar("Europe/Berlin", frozenset({1, 2, 3, 4, 5}), time(9), time(17))
    assert datetime.fromisoformat(third["sla"]["first_response_due_at"]) == add_business_minutes(berlin, created, 15)
    assert datetime.fromisoformat(third["sla"]["resolution_due_at"]) == add_business_minutes(berlin, created, 90)
    # Another community's hours are read on its first filing, under the same version.
    other = await file_ticket(api, lin, priority="high", community_id=str(uuid.uuid4()))
    assert _due(other) == (timedelta(minutes=15), timedelta(minutes=90))  # no hours there: 24/7
    # Round-robin switched on elsewhere: the next filing is assigned.
    async with api(AGENT) as client:
        assert (await client.get("/v1/tickets")).status_code == 200  # joins the rotation
    assert (await file_ticket(api, lin))["assignee_id"] is None
    await _elsewhere(
        system,
        "INSERT INTO support_settings (id, reopen_window_days, assignment, updated_at) "
        "VALUES (1, 7, 'round_robin', now())",
    )
    assert (await file_ticket(api, lin))["assignee_id"] == AGENT.id
    # ...and off again through the API of this process.
    async with api(staff("operator")) as client:
        assert (await client.put("/v1/support-settings", json={"assignment": "manual"})).status_code == 200
    assert (await file_ticket(api, lin))["assignee_id"] is None
    # A policy removed elsewhere: the default again.
    await _elsewhere(system, "DELETE FROM sla_policies")
    assert _due(await file_ticket(api, lin, priority="high")) == (timedelta(minutes=60), timedelta(minutes=480))


async def test_an_unchanged_config_costs_the_filing_no_read(system: System, api: Api) -> None:
    community, lin = uuid.uuid4(), uuid.uuid4()
    with _statements(system) as cold:
        await file_ticket(api, lin, community_id=str(community))
    assert sum(CONFIG_READ in s for s in cold) == 1
    with _statements(system) as warm:
        ticket = await file_ticket(api, lin, community_id=str(community))
    assert not any(CONFIG_READ in s for s in warm)
    assert sum(s.startswith("INSERT INTO tickets") for s in warm) == 1
    assert _due(ticket) == (timedelta(minutes=240), timedelta(minutes=1440))  # normal, by default
    # A change, even to another community's hours, makes the next filing read again, once.
    async with api(staff("operator")) as client:
        hours = {"timezone": "Asia/Shanghai", "days": [1], "start": "09:00", "end": "10:00"}
        assert (await client.put(f"/v1/communities/{uuid.uuid4()}/business-hours", json=hours)).status_code == 200
    with _statements(system) as changed:
        await file_ticket(api, lin, community_id=str(community))
    assert sum(CONFIG_READ in s for s in changed) == 1
    assert sum(s.startswith("INSERT INTO tickets") for s in changed) == 2  # the guarded one found nothing


async def test_filings_racing_a_policy_change_use_one_policy_or_the_other(system: System, api: Api) -> None:
    lin = uuid.uuid4()
    await file_ticket(api, lin, priority="urgent")  # cached: the default, 30 / 240
    old, new = (timedelta(minutes=30), timedelta(minutes=240)), (timedelta(minutes=20), timedelta(minutes=100))
    body = {"items": [{"priority": "urgent", "first_response_minutes": 20, "resolution_minutes": 100}]}

    async def change() -> None:
        await asyncio.sleep(0.01)
        async with api(staff("operator")) as client:
            assert (await client.put("/v1/sla-policies", json=body)).status_code == 200

    racing = asyncio.gather(*(file_ticket(api, lin, priority="urgent") for _ in range(20)))
    raced, _ = await asyncio.gather(racing, change())
    assert {_due(ticket) for ticket in raced} <= {old, new}  # never one target from each
    after = await asyncio.gather(*(file_ticket(api, lin, priority="urgent") for _ in range(5)))
    assert {_due(ticket) for ticket in after} == {new}


async def test_the_cached_config_reads_as_the_settings_and_policies_endpoints_do(system: System) -> None:
    """The filing's one-statement read (`_config_of`) gives the same assignment and SLA
    policies as `get_settings` and `list_policies`, defaults included, before and after
    something is stored."""
    db = system.state("feedback").db

    async def same() -> None:
        async with db.session() as session:
            config = await SupportConfigCache().read(session, None)
            settings = await tickets_service.get_settings(session)
            policies = await sla_service.list_policies(session)
        assert config.assignment == settings.assignment
        assert [config.policy(item.priority) for item in policies.items] == policies.items

    await same()  # nothing stored: the defaults
    await _elsewhere(
        system,
        "INSERT INTO sla_policies (priority, first_response_minutes, resolution_minutes, business_hours_only, "
        "updated_at) VALUES ('urgent', 5, 30, true, now())",
    )
    await _elsewhere(
        system,
        "INSERT INTO support_settings (id, reopen_window_days, assignment, updated_at) "
        "VALUES (1, 3, 'round_robin', now())",
    )
    await same()
