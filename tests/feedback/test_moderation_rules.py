"""Community rules (versioned, read by the community) and the sanction ladder, through the gateway."""

from __future__ import annotations

from services.common.problems import problem_type
from tests.content.factories import OPERATOR, create_member
from tests.feedback.conftest import AGENT
from tests.feedback.moderation_factories import PROBLEM, RULES, community
from tests.system import System, member, partner, staff


async def test_members_of_the_community_read_the_rules_and_every_change_bumps_the_version(system: System) -> None:
    c = await community(system, members=1)
    outsider = await create_member(system)
    await system.drain()
    async with await system.client(member(c.members[0])) as client:
        response = await client.get(f"/v1/communities/{c.id}/rules")
        assert response.status_code == 200
        assert response.json() == {"community_id": c.id, "version": 1, "items": RULES}
        assert (await client.put(f"/v1/communities/{c.id}/rules", json={"items": []})).status_code == 403
    async with await system.client(member(outsider)) as client:
        refused = await client.get(f"/v1/communities/{c.id}/rules")
        assert refused.status_code == 403
        assert refused.json()["type"] == problem_type("not-a-community-member")
    for reader in (AGENT, staff("analyst"), partner("moderation:write")):
        async with await system.client(reader) as client:
            assert (await client.get(f"/v1/communities/{c.id}/rules")).json()["version"] == 1
    async with await system.client(OPERATOR) as op:
        same = await op.put(f"/v1/communities/{c.id}/rules", json={"items": RULES})
        assert same.json()["version"] == 1  # nothing changed: no new version
        changed = await op.put(f"/v1/communities/{c.id}/rules", json={"items": RULES[:2]})
        assert (changed.json()["version"], len(changed.json()["items"])) == (2, 2)
        assert (await op.put(f"/v1/communities/{c.id}/rules", json={"items": RULES})).json()["version"] == 3


async def test_invalid_rules_are_refused_and_change_nothing(system: System) -> None:
    c = await community(system, members=0)
    bad_bodies = [
        {"items": [RULES[0], RULES[0]]},  # duplicate code
        {"items": [RULES[0] | {"severity": "fatal"}]},
        {"items": [RULES[0] | {"code": "No Spam!"}]},
        {"items": [RULES[0] | {"title": ""}]},
        {"items": RULES, "version": 7},  # unknown field
    ]
    async with await system.client(OPERATOR) as op:
        for body in bad_bodies:
            response = await op.put(f"/v1/communities/{c.id}/rules", json=body)
            assert response.status_code == 422, body
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["errors"]
        assert (await op.get(f"/v1/communities/{c.id}/rules")).json()["version"] == 1


async def test_the_ladder_has_a_default_and_operators_set_it(system: System) -> None:
    c = await community(system, members=0, rules=False)
    async with await system.client(OPERATOR) as op:
        default = (await op.get(f"/v1/communities/{c.id}/sanction-ladder")).json()
        assert default == {
            "strike_ttl_days": 90,
            "steps": [
                {"strikes": 1, "action": "warn", "minutes": None},
                {"strikes": 2, "action": "mute", "minutes": 1440},
                {"strikes": 3, "action": "ban", "minutes": None},
            ],
        }
        ladder = {"strike_ttl_days": 30, "steps": [{"strikes": 2, "action": "mute", "minutes": 60}]}
        assert (await op.put(f"/v1/communities/{c.id}/sanction-ladder", json=ladder)).status_code == 200
        for bad in (
            {"strike_ttl_days": 30, "steps": [{"strikes": 1, "action": "mute"}]},  # a mute needs minutes
            {"strike_ttl_days": 30, "steps": [{"strikes": 2, "action": "warn"}, {"strikes": 1, "action": "ban"}]},
            {"strike_ttl_days": 0, "steps": [{"strikes": 1, "action": "warn"}]},
            {"strike_ttl_days": 30, "steps": []},
        ):
            response = await op.put(f"/v1/communities/{c.id}/sanction-ladder", json=bad)
            assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), bad
        assert (await op.get(f"/v1/communities/{c.id}/sanction-ladder")).json()["steps"][0]["minutes"] == 60
    async with await system.client(AGENT) as client:
        assert (await client.get(f"/v1/communities/{c.id}/sanction-ladder")).status_code == 403
