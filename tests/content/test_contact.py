"""Contact permits: the rolling weekly budget across partners, promotions and consent (learned
from members' events), quiet hours with `retry_at`, replies, and 50 concurrent asks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from services.common.db import table_of
from services.common.identity import SYSTEM
from services.content.contact import repository as contact_repository
from services.content.contact import service as contact_service
from services.content.contact.models import ContactPolicy
from services.content.policy.models import PublishingPolicy
from services.content.policy.rules import QuietHours
from tests.content.factories import OPERATOR, PROBLEMS, create_community, create_member, quiet_free_community
from tests.system import System, member, partner, staff

BOT = partner("contact:write")
CONTACT, PUBLISHING = table_of(ContactPolicy), table_of(PublishingPolicy)


async def permit(system: System, member_id: str, community_id: str, kind: str, caller: Any = BOT) -> Any:
    async with await system.client(caller) as client:
        return await client.post(
            "/v1/contact-permits", json={"member_id": member_id, "community_id": community_id, "kind": kind}
        )


async def test_budget_counts_across_partners_and_kinds(system: System) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id, marketing=True)
    await system.drain()
    granted = await permit(system, member_id, community_id, "promotion")
    assert granted.status_code == 201, granted.text
    assert granted.json()["remaining"] == {"week": 2, "promotions": 0}
    second_promo = await permit(system, member_id, community_id, "promotion", partner("contact:write"))
    assert (second_promo.status_code, second_promo.json()["type"]) == (409, PROBLEMS + "contact-budget-exhausted")
    assert second_promo.json()["retry_at"]
    assert (await permit(system, member_id, community_id, "survey", OPERATOR)).json()["remaining"]["week"] == 1
    assert (await permit(system, member_id, community_id, "reminder")).status_code == 201
    refused = await permit(system, member_id, community_id, "announcement")
    assert (refused.status_code, refused.json()["type"]) == (409, PROBLEMS + "contact-budget-exhausted")
    for _ in range(3):  # replies never count and are never refused
        reply = await permit(system, member_id, community_id, "reply")
        assert (reply.status_code, reply.json()["permit_id"]) == (201, None)
    async with await system.client(member(member_id)) as client:
        budget = await client.get(f"/v1/members/{member_id}/contact-budget", params={"community_id": community_id})
        assert budget.status_code == 200
        body = budget.json()
        assert (body["week_used"], body["weekly_max"], body["promotions_used"], body["weekly_max_promotions"]) == (
            3,
            3,
            1,
            1,
        )
        assert body["next_allowed_at"] is not None
        other = await create_member(system)
        assert (await client.get(f"/v1/members/{other}/contact-budget")).status_code == 404
    async with await system.client(partner("read")) as client:
        assert (await permit(system, member_id, community_id, "survey", partner("read"))).status_code == 403


async def test_promotions_need_marketing_consent_learned_from_events(system: System) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id, marketing=False)
    await system.drain()
    refused = await permit(system, member_id, community_id, "promotion")
    assert (refused.status_code, refused.json()["type"]) == (409, PROBLEMS + "no-consent")
    assert (await permit(system, member_id, community_id, "survey")).status_code == 201
    async with await system.client(OPERATOR) as op:
        assert (await op.patch(f"/v1/members/{member_id}", json={"consent": {"marketing": True}})).status_code == 200
    await system.drain()
    assert (await permit(system, member_id, community_id, "promotion")).status_code == 201


async def test_quiet_hours_refuse_with_retry_at(system: System) -> None:
    community_id = await quiet_free_community(system, quiet_hours={"start": "00:00", "end": "23:59"})
    member_id = await create_member(system, community_id)
    await system.drain()
    refused = await permit(system, member_id, community_id, "survey")
    # Unless this runs in the one free minute of the day, it is quiet now.
    if refused.status_code == 409:
        assert refused.json()["type"] == PROBLEMS + "quiet-hours"
        assert refused.json()["retry_at"].endswith("Z")
    assert (await permit(system, member_id, community_id, "reply")).status_code == 201


async def test_fifty_concurrent_permits_with_three_left_grant_exactly_three(system: System) -> None:
    community_id = await quiet_free_community(system, weekly_max=5)
    member_id = await create_member(system, community_id)
    await system.drain()
    for _ in range(2):
        assert (await permit(system, member_id, community_id, "survey")).status_code == 201
    answers = await asyncio.gather(*(permit(system, member_id, community_id, "reminder") for _ in range(50)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 3, codes
    assert codes.count(409) == 47
    async with await system.client(OPERATOR) as op:
        budget = await op.get(f"/v1/members/{member_id}/contact-budget", params={"community_id": community_id})
    assert budget.json()["week_used"] == 5


async def test_contact_policy_defaults_and_access(system: System) -> None:
    community_id = await create_community(system)
    async with await system.client(OPERATOR) as op:
        default = (await op.get(f"/v1/communities/{community_id}/contact-policy")).json()
        assert (default["is_default"], default["quiet_hours_inherited"]) == (True, True)
        assert default["quiet_hours"] == {"start": "23:00", "end": "08:00"}
        bad = await op.put(f"/v1/communities/{community_id}/contact-policy", json={"weekly_max": -1})
        assert bad.status_code == 422
    async with await system.client(staff("agent")) as agent:
        assert (await agent.get(f"/v1/communities/{community_id}/contact-policy")).status_code == 403


async def test_our_services_ask_as_the_system_and_members_never_do(system: System) -> None:
    community_id = await quiet_free_community(system)
    member_id = await create_member(system, community_id)
    body = {"member_id": member_id, "community_id": community_id, "kind": "survey"}
    async with system.direct("content", SYSTEM) as feedback:  # how feedback asks before a CSAT survey
        granted = await feedback.post("/v1/contact-permits", json=body)
    assert granted.status_code == 201, granted.text
    assert granted.json()["remaining"]["week"] == 2
    refused = await permit(system, member_id, community_id, "survey", member(member_id))
    assert refused.status_code == 403  # not even for themself
    async with system.direct("content", member(member_id)) as client:  # nor straight to the service
        assert (await client.post("/v1/contact-permits", json=body)).status_code == 403
    assert (await permit(system, member_id, community_id, "survey", staff("agent"))).status_code == 403


ASK = sa.text(
    "SELECT weekly_max, weekly_max_promotions, quiet_start, quiet_end, quiet_inherited, is_default, refused"
    " FROM content_ask_permit(:id, :member, :community, 'survey', 'test', :now, :local, :window, :max, :promotions,"
    " :quiet_start, :quiet_end)"
)


_WRAP, _PLAIN, _EMPTY = QuietHours(time(23), time(8)), QuietHours(time(9), time(17, 30)), QuietHours(time(10), time(10))
# Each way a community may (not) have policies: (contact policy, publishing policy).
POLICY_SETUPS: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "no policies": (None, None),
    "publishing without quiet hours": (None, {"quiet_start": None, "quiet_end": None}),
    "quiet hours inherited": (
        {"quiet_start": None, "quiet_end": None},
        {"quiet_start": _PLAIN.start, "quiet_end": _PLAIN.end},
    ),
    "own quiet hours": (
        {"quiet_start": _WRAP.start, "quiet_end": _WRAP.end},
        {"quiet_start": None, "quiet_end": None},
    ),
    "own empty window": ({"quiet_start": _EMPTY.start, "quiet_end": _EMPTY.end}, None),
}


async def _store_policies(session: Any, contact: dict[str, Any] | None, publishing: dict[str, Any] | None) -> uuid.UUID:
    community_id, now = uuid.uuid4(), datetime.now(UTC)
    if publishing is not None:
        values = publishing | {"max_promotions_per_day": 2, "min_gap_minutes": 0, "updated_at": now}
        await session.execute(PUBLISHING.insert().values(community_id=community_id, **values))
    if contact is not None:
        values = contact | {"weekly_max": 1000, "weekly_max_promotions": 7, "updated_at": now}
        await session.execute(CONTACT.insert().values(community_id=community_id, **values))
    return community_id


async def test_the_reply_path_reads_limits_as_load_limits_does(system: System) -> None:
    """A reply's remaining budget comes from one raw read (`_limits_from`): the same limits as
    `load_limits` for each way a community may (not) have policies."""
    db = system.state("content").db
    async with db.session() as session:
        stored = {name: await _store_policies(session, *setup) for name, setup in POLICY_SETUPS.items()}
        await session.commit()  # the raw read sees committed rows only
    async with db.session() as session:
        for name, community_id in stored.items():
            expected = await contact_service.load_limits(session, community_id)
            got = contact_service._limits_from(await contact_repository.limits_row(db, community_id))
            assert got == expected, name


async def test_the_ask_function_reads_limits_and_quiet_hours_as_the_python_rules_do(system: System) -> None:
    """`content_ask_permit` decides in SQL what `load_limits` and `QuietHours.contains` decide
    in Python: the same limits for each way a community may (not) have policies, and the same
    quiet verdict for every half hour and each edge of a plain, a wrapping and an empty window."""
    now = datetime.now(UTC)
    db = system.state("content").db
    async with db.session() as session:
        for name, (contact, publishing) in POLICY_SETUPS.items():
            community_id = await _store_policies(session, contact, publishing)
            limits = await contact_service.load_limits(session, community_id)
            locals_ = [time(h, m) for h in range(24) for m in (0, 30)] + [time(7, 59, 59), time(17, 29, 59)]
            for local in locals_:
                args = {"id": uuid.uuid4(), "member": uuid.uuid4(), "community": community_id, "now": now}
                args |= {"local": local, "window": timedelta(days=7), "max": 3, "promotions": 1}
                args |= {"quiet_start": time(23), "quiet_end": time(8)}
                row = (await session.execute(ASK, args)).one()
                quiet = QuietHours(row.quiet_start, row.quiet_end) if row.quiet_start is not None else None
                got = (row.weekly_max, row.weekly_max_promotions, quiet, row.quiet_inherited, row.is_default)
                assert got == (
                    limits.weekly_max,
                    limits.weekly_max_promotions,
                    limits.quiet,
                    limits.quiet_inherited,
                    limits.is_default,
                ), name
                expected = limits.quiet is not None and limits.quiet.contains(local)
                assert (row.refused == "quiet-hours") == expected, (name, local)
        await session.rollback()
