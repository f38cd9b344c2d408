"""Helpers for the moderation tests: a community with members (joined through members' API,
learned by feedback from the events), its rules, reports and resolutions, through the gateway."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tests.content.factories import OPERATOR, create_community, create_member
from tests.feedback.conftest import AGENT
from tests.system import System, member

RULES = [
    {"code": "no-spam", "title": "No spam", "description": "No ads, no links to shops.", "severity": "minor"},
    {"code": "be-kind", "title": "Be kind", "description": "No insults.", "severity": "major"},
    {"code": "no-doxxing", "title": "No doxxing", "description": "Never post others' data.", "severity": "severe"},
]
PROBLEM = "application/problem+json"


@dataclass
class Community:
    id: str
    members: list[str]


async def community(system: System, members: int = 3, *, rules: bool = True) -> Community:
    """A community with `members` members that feedback knows of (events drained), and its rules."""
    community_id = await create_community(system)
    ids = [await create_member(system, community_id) for _ in range(members)]
    await system.drain()
    if rules:
        async with await system.client(OPERATOR) as op:
            response = await op.put(f"/v1/communities/{community_id}/rules", json={"items": RULES})
        assert response.status_code == 200, response.text
    return Community(community_id, ids)


async def report(
    system: System, c: Community, reporter: str, reported: str, *, message_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    evidence = {"message_id": message_id or f"m-{uuid.uuid4().hex[:8]}", "text": "buy cheap tea at example.com"}
    body = {"community_id": c.id, "reported_member_id": reported, "rule_code": "no-spam", "evidence": evidence}
    async with await system.client(member(reporter)) as client:
        response = await client.post("/v1/reports", json=body | fields)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def resolve(system: System, report_id: str, decision: str = "uphold", **fields: Any) -> dict[str, Any]:
    async with await system.client(AGENT) as client:
        response = await client.post(f"/v1/reports/{report_id}/resolve", json={"decision": decision} | fields)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def uphold_new_report(system: System, c: Community, reported: str, rule_code: str = "no-spam") -> dict[str, Any]:
    """A fresh report against `reported`, upheld; returns the resolved report (with its sanction id)."""
    reporter = next(m for m in c.members if m != reported)
    filed = await report(system, c, reporter, reported, rule_code=rule_code)
    return await resolve(system, filed["id"])


async def standing(system: System, c: Community, member_id: str) -> dict[str, Any]:
    async with await system.client(OPERATOR) as op:
        response = await op.get(f"/v1/members/{member_id}/standing", params={"community_id": c.id})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def sanction(system: System, c: Community, member_id: str, action: str, **fields: Any) -> dict[str, Any]:
    body = {"member_id": member_id, "community_id": c.id, "action": action, "rule_code": "no-spam", "reason": "spam"}
    async with await system.client(OPERATOR) as op:
        response = await op.post("/v1/sanctions", json=body | fields)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def feedback_sql(system: System, statement: str, **params: Any) -> list[Any]:
    """Run SQL on feedback's database (to age rows: time passing, not a shortcut around the API)."""
    async with system.state("feedback").db.engine.begin() as conn:
        result = await conn.execute(sa.text(statement), params)
        return list(result.all()) if result.returns_rows else []
