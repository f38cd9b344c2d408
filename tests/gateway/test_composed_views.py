"""The member overview and the community dashboard, through the gateway with real roles;
a failing or hanging service degrades them instead of failing them."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.gateway.compose_support import ADMIN, AGENT, ANALYST, OPERATOR, broken_service, seed
from tests.system import System, member, partner, staff

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


async def get(system: System, identity: Any, path: str, **params: Any) -> httpx.Response:
    async with await system.client(identity) as client:
        return await client.get(path, params=params)


# --- overview -------------------------------------------------------------------------------


async def test_overview_combines_member_points_badges_open_tickets_and_contact_budget(system: System) -> None:
    seeded = await seed(system)
    path = f"/v1/members/{seeded.member_id}/overview"
    answer = await get(system, OPERATOR, path, community_id=seeded.community_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["degraded"] == []
    assert body["member"]["id"] == seeded.member_id
    # How long each part took, for whoever tunes it (W3C Server-Timing).
    timing = [entry.split(";dur=") for entry in answer.headers["server-timing"].split(", ")]
    assert {name for name, _ in timing} == {"member", "points", "badges", "open-tickets", "contact-budget"}
    assert all(float(ms) >= 0 for _, ms in timing)
    assert body["member"]["email"] == "mei@example.com"
    # Each part is exactly what its owning service answers.
    async with await system.client(OPERATOR) as op:
        assert body["points"] == (await op.get(f"/v1/members/{seeded.member_id}/points")).json()
        assert body["badges"] == (await op.get(f"/v1/members/{seeded.member_id}/badges")).json()["items"]
        budget = await op.get(
            f"/v1/members/{seeded.member_id}/contact-budget", params={"community_id": seeded.community_id}
        )
        assert body["contact_budget"] == budget.json()
    assert body["points"]["balance"] > 0
    assert body["contact_budget"]["week_used"] == 1  # the survey
    assert [t["id"] for t in body["open_tickets"]] == [seeded.ticket_id]

    # A resolved ticket is no longer open.
    async with await system.client(AGENT) as agent:
        assert (await agent.post(f"/v1/tickets/{seeded.ticket_id}/resolve")).status_code == 200
    again = (await get(system, OPERATOR, path)).json()
    assert again["open_tickets"] == []
    assert again["contact_budget"]["member_id"] == seeded.member_id  # without a community: the defaults


async def test_overview_is_the_members_own_or_an_operators(system: System) -> None:
    seeded = await seed(system)
    path = f"/v1/members/{seeded.member_id}/overview"
    own = await get(system, member(seeded.member_id), path)
    assert own.status_code == 200, own.text
    assert own.json()["degraded"] == []
    assert [t["id"] for t in own.json()["open_tickets"]] == [seeded.ticket_id]
    assert (await get(system, ADMIN, path)).status_code == 200

    other = await seed(system)
    problem(await get(system, member(other.member_id), path), 404)  # someone else's: it does not exist
    problem(await get(system, ANALYST, path), 403)
    problem(await get(system, AGENT, path), 403)
    problem(await get(system, partner("read"), path), 403)
    async with system.anonymous() as anonymous:
        problem(await anonymous.get(path), 401)
    problem(await get(system, OPERATOR, f"/v1/members/{'0' * 8}-0000-4000-8000-{'0' * 12}/overview"), 404)


async def test_a_failing_part_is_left_out_and_named(system: System) -> None:
    seeded = await seed(system)
    path = f"/v1/members/{seeded.member_id}/overview"
    with broken_service(system, "rewards"):
        answer = await get(system, OPERATOR, path, community_id=seeded.community_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["degraded"] == ["rewards"]
    assert body["points"] is None
    assert body["badges"] is None
    assert body["member"]["id"] == seeded.member_id
    assert [t["id"] for t in body["open_tickets"]] == [seeded.ticket_id]


async def test_a_hanging_part_is_cut_at_its_budget(system: System) -> None:
    seeded = await seed(system)
    budget = system.settings.compose_part_timeout_seconds
    with broken_service(system, "feedback", hang=True):
        started = time.perf_counter()
        answer = await get(system, member(seeded.member_id), f"/v1/members/{seeded.member_id}/overview")
        elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    assert answer.json()["degraded"] == ["feedback"]
    assert answer.json()["open_tickets"] is None
    assert budget <= elapsed < budget + 0.5


async def test_without_members_the_overview_is_503(system: System) -> None:
    seeded = await seed(system)
    with broken_service(system, "members"):
        answer = await get(system, OPERATOR, f"/v1/members/{seeded.member_id}/overview")
    body = problem(answer, 503)
    assert body["type"] == "https://qunyun.dev/problems/service-unavailable"
    assert answer.headers["retry-after"]


# --- dashboard ------------------------------------------------------------------------------


async def test_every_dashboard_figure_matches_its_owning_service(system: System) -> None:
    seeded = await seed(system)
    answer = await get(system, ANALYST, "/v1/dashboard", community_id=seeded.community_id)
    assert answer.status_code == 200, answer.text
    board = answer.json()
    assert board["degraded"] == []
    assert board["community"]["id"] == seeded.community_id
    window = board["window"]
    days = {"community_id": seeded.community_id, "from": window["from"], "to": window["to"]}
    instants = {"community_id": seeded.community_id, "from": window["starts_at"], "to": window["ends_at"]}

    async with await system.client(ANALYST) as analyst:
        engagement = (await analyst.get("/v1/analytics/engagement", params=days)).json()
        retention = await analyst.get(
            "/v1/analytics/retention", params={"community_id": seeded.community_id, "as_of": window["to"]}
        )
        churn = await analyst.get(
            "/v1/analytics/churn-risk",
            params={"community_id": seeded.community_id, "as_of": window["to"], "limit": 10},
        )
        best = await analyst.get(f"/v1/communities/{seeded.community_id}/best-times")
        rewards = (await analyst.get("/v1/analytics/rewards", params=instants)).json()
        content = (await analyst.get("/v1/analytics/content", params=instants)).json()
        support = (await analyst.get("/v1/analytics/support", params=instants)).json()

    last = engagement["days"][-1]
    assert len(engagement["days"]) == 30
    assert board["engagement"] == {
        "dau": last["dau"],
        "wau": last["wau"],
        "mau": last["mau"],
        "stickiness": last["stickiness"],
        "days": engagement["days"],
    }
    assert board["engagement"]["mau"] == 1
    assert board["retention"] == retention.json()["cohorts"]
    assert board["churn_risk"] == churn.json()["items"]
    assert board["best_times"] == best.json()["items"]
    assert board["points"] == rewards["points"]
    # In a community, points issued are those earned there (3 check-ins); the hand-given 50 are not.
    assert board["points"]["issued"] == 15
    assert board["points"]["redeemed"] == 20
    assert board["redemptions"] == rewards["redemptions"]
    assert board["redemptions"]["created"] == 1
    assert board["content"] == {k: content[k] for k in ("published", "scheduled", "published_by_kind")}
    assert board["content"]["scheduled"] == 1
    expected_support = {
        k: support[k]
        for k in ("tickets", "sla_attainment", "median_first_response_minutes", "csat_average", "backlog_by_status")
    }
    assert board["support"] == expected_support
    assert board["support"]["tickets"] == 1


async def test_dashboard_window_is_local_days_and_checked(system: System) -> None:
    seeded = await seed(system)
    answer = await get(
        system,
        OPERATOR,
        "/v1/dashboard",
        community_id=seeded.community_id,
        **{
            "from": "2026-11-01",
            "to": "2026-11-07",
        },
    )
    assert answer.status_code == 200, answer.text
    window = answer.json()["window"]
    # Asia/Shanghai is UTC+8: local midnights are 16:00 UTC the day before.
    assert window == {
        "from": "2026-11-01",
        "to": "2026-11-07",
        "timezone": "Asia/Shanghai",
        "starts_at": "2026-10-31T16:00:00Z",
        "ends_at": "2026-11-07T16:00:00Z",
    }
    assert next(d["day"] for d in answer.json()["engagement"]["days"]) == "2026-11-01"
    # The heat map is members' for the same window (the console draws it from the dashboard).
    heatmap = await get(
        system,
        OPERATOR,
        "/v1/analytics/activity-heatmap",
        community_id=seeded.community_id,
        **{"from": "2026-11-01", "to": "2026-11-07"},
    )
    assert answer.json()["heatmap"] == heatmap.json()["counts"]
    problem(
        await get(
            system,
            OPERATOR,
            "/v1/dashboard",
            community_id=seeded.community_id,
            **{"from": "2026-11-08", "to": "2026-11-07"},
        ),
        422,
    )
    problem(
        await get(
            system,
            OPERATOR,
            "/v1/dashboard",
            community_id=seeded.community_id,
            **{"from": "2024-01-01", "to": "2026-11-07"},
        ),
        422,
    )
    problem(await get(system, OPERATOR, "/v1/dashboard"), 422)
    edge = {"from": "9999-12-30", "to": "9999-12-31"}
    problem(await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.community_id, **edge), 422)
    problem(await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.member_id), 404)


async def test_dashboard_is_for_operators_and_analysts(system: System) -> None:
    seeded = await seed(system)
    for identity in (OPERATOR, ANALYST, ADMIN):
        assert (await get(system, identity, "/v1/dashboard", community_id=seeded.community_id)).status_code == 200
    for identity in (AGENT, staff("reviewer"), member(seeded.member_id), partner("read")):
        problem(await get(system, identity, "/v1/dashboard", community_id=seeded.community_id), 403)


async def test_dashboard_degrades_and_complete_answers_are_cached(system: System) -> None:
    seeded = await seed(system)
    with broken_service(system, "feedback", hang=True):
        started = time.perf_counter()
        answer = await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.community_id)
        elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    board = answer.json()
    assert board["degraded"] == ["feedback"]
    assert board["support"] is None
    assert board["points"] is not None
    assert board["engagement"] is not None
    assert elapsed < 2 * system.settings.compose_part_timeout_seconds + 0.5

    # Degraded answers are not cached: feedback is back at once.
    first = (await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.community_id)).json()
    assert first["degraded"] == []
    assert first["support"]["tickets"] == 1
    # A complete one is: the same window within the cache time is the same answer.
    async with await system.client(member(seeded.member_id)) as mei:
        filed = await mei.post(
            "/v1/tickets",
            json={
                "subject": "Another",
                "body": "one more",
                "category": "question",
                "priority": "low",
                "community_id": seeded.community_id,
            },
        )
        assert filed.status_code == 201
    cached = (await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.community_id)).json()
    assert cached == first
    # Another window is another entry.
    other = await get(system, OPERATOR, "/v1/dashboard", community_id=seeded.community_id, to=first["window"]["to"])
    assert other.json()["support"]["tickets"] == 2


async def test_without_members_the_dashboard_is_503(system: System) -> None:
    seeded = await seed(system)
    with broken_service(system, "members"):
        answer = await get(system, ANALYST, "/v1/dashboard", community_id=seeded.community_id)
    problem(answer, 503)
    assert answer.headers["retry-after"]
