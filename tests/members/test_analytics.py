"""`/v1/analytics`: known activity around local-day boundaries in a non-UTC zone.

Shanghai is UTC+8: 15:30Z is 23:30 local (same day), 16:30Z is 00:30 local (next day).
Counted in UTC instead, every expectation below would come out different.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.members.conftest import ApiFactory
from tests.members.factories import ANALYST, OPERATOR, create_community, create_member
from tests.system import member, partner


async def send(client: httpx.AsyncClient, community: dict[str, Any], events: list[tuple[dict[str, Any], str]]) -> None:
    response = await client.post(
        "/v1/events/batch",
        json={
            "events": [
                {"member_id": who["id"], "community_id": community["id"], "type": "check_in", "occurred_at": at}
                for who, at in events
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.json()


async def test_engagement_counts_local_days(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client, timezone="Asia/Shanghai")
        a, b, c = await create_member(client), await create_member(client), await create_member(client)
        await send(
            client,
            community,
            [
                (a, "2026-03-01T15:30:00Z"),  # local 03-01 23:30
                (a, "2026-03-01T16:30:00Z"),  # local 03-02 00:30
                (b, "2026-03-02T01:00:00Z"),  # local 03-02 09:00
                (c, "2026-02-10T12:00:00Z"),  # local 02-10: inside the 30-day window only
            ],
        )
    async with await api(ANALYST) as client:
        response = await client.get(
            "/v1/analytics/engagement",
            params={"community_id": community["id"], "from": "2026-03-01", "to": "2026-03-03"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == "2026-03-01"
    assert body["to"] == "2026-03-03"
    assert body["timezone"] == "Asia/Shanghai"
    assert body["days"] == [
        {"day": "2026-03-01", "dau": 1, "wau": 1, "mau": 2, "stickiness": 0.5},
        {"day": "2026-03-02", "dau": 2, "wau": 2, "mau": 3, "stickiness": 0.6667},
        {"day": "2026-03-03", "dau": 0, "wau": 2, "mau": 3, "stickiness": 0.0},
    ]


async def test_engagement_defaults_and_validation(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        default = await client.get("/v1/analytics/engagement", params={"community_id": community["id"]})
        backwards = await client.get(
            "/v1/analytics/engagement",
            params={"community_id": community["id"], "from": "2026-03-05", "to": "2026-03-01"},
        )
        too_long = await client.get(
            "/v1/analytics/engagement",
            params={"community_id": community["id"], "from": "2025-01-01", "to": "2026-03-01"},
        )
        full_year = await client.get(
            "/v1/analytics/engagement",
            params={"community_id": community["id"], "from": "2025-03-01", "to": "2026-03-01"},
        )
        bad_date = await client.get(
            "/v1/analytics/engagement", params={"community_id": community["id"], "from": "yesterday"}
        )
        missing = await client.get("/v1/analytics/engagement")
        unknown = await client.get("/v1/analytics/engagement", params={"community_id": str(uuid.uuid4())})
    assert default.status_code == 200
    assert len(default.json()["days"]) == 30
    for response in (backwards, too_long, bad_date, missing):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
    assert full_year.status_code == 200
    assert len(full_year.json()["days"]) == 366
    assert unknown.status_code == 404


async def test_retention_cohorts_by_local_join_week(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client, timezone="Asia/Shanghai")
        m1, m2, m3 = await create_member(client), await create_member(client), await create_member(client)
        for who, joined in ((m1, "2026-03-02T02:00:00Z"), (m2, "2026-03-08T16:30:00Z"), (m3, "2026-03-04T00:00:00Z")):
            response = await client.post(
                f"/v1/communities/{community['id']}/members", json={"member_id": who["id"], "joined_at": joined}
            )
            assert response.status_code == 201, response.text
        assert response.json()["joined_date"] == "2026-03-04"
        await send(
            client,
            community,
            [
                (m1, "2026-03-03T02:00:00Z"),  # week 0
                (m1, "2026-03-10T02:00:00Z"),  # week 1
                (m2, "2026-03-09T01:00:00Z"),  # week 1 (its join week)
                (m2, "2026-03-17T02:00:00Z"),  # week 2
                (m3, "2026-03-17T03:00:00Z"),  # week 2
            ],
        )
        response = await client.get(
            "/v1/analytics/retention", params={"community_id": community["id"], "weeks": 3, "as_of": "2026-03-18"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["cohorts"] == [
        {"cohort_start": "2026-03-02", "size": 2, "retained": [0.5, 0.5, 0.5]},
        {"cohort_start": "2026-03-09", "size": 1, "retained": [1.0, 1.0]},  # joined 00:30 local on the 9th
        {"cohort_start": "2026-03-16", "size": 0, "retained": [0.0]},
    ]


async def test_churn_risk_ranks_the_biggest_drops(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client, timezone="Asia/Shanghai")
        x, y, z, w = [await create_member(client) for _ in range(4)]
        events: list[tuple[dict[str, Any], str]] = []
        events += [(x, f"2026-03-0{d}T04:00:00Z") for d in range(1, 10)] + [(x, "2026-03-10T04:00:00Z")]
        events += [(x, "2026-03-14T16:30:00Z"), (x, "2026-03-20T04:00:00Z")]  # 16:30Z on the 14th = local 15th
        events += [(y, f"2026-03-0{d}T04:00:00Z") for d in range(1, 5)]
        events += [(z, "2026-03-02T04:00:00Z"), (z, "2026-03-03T04:00:00Z")]
        events += [(z, f"2026-03-2{d}T04:00:00Z") for d in range(1, 6)]
        events += [(w, f"2026-03-0{d}T04:00:00Z") for d in range(1, 6)] + [
            (w, f"2026-03-2{d}T04:00:00Z") for d in range(4)
        ]
        await send(client, community, events)
    async with await api(ANALYST) as client:
        response = await client.get(
            "/v1/analytics/churn-risk", params={"community_id": community["id"], "as_of": "2026-03-28"}
        )
        limited = await client.get(
            "/v1/analytics/churn-risk", params={"community_id": community["id"], "as_of": "2026-03-28", "limit": 2}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recent_from"] == "2026-03-15"
    assert body["previous_from"] == "2026-03-01"
    ranked = [(item["member_id"], item["recent"], item["previous"], item["score"]) for item in body["items"]]
    assert ranked == [(y["id"], 0, 4, 1.0), (x["id"], 2, 10, 0.8), (w["id"], 4, 5, 0.2)]
    assert body["items"][1]["last_active_at"].startswith("2026-03-20T04:00:00")
    assert [item["member_id"] for item in limited.json()["items"]] == [y["id"], x["id"]]


async def test_heatmap_is_weekday_by_local_hour(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client, timezone="America/New_York")
        someone = await create_member(client)
        await send(
            client,
            community,
            [
                (someone, "2026-03-03T04:30:00Z"),  # Monday 23:30 in New York (EST, UTC-5)
                (someone, "2026-03-03T05:30:00Z"),  # Tuesday 00:30
                (someone, "2026-03-03T05:45:00Z"),  # Tuesday 00:45
                (someone, "2026-03-10T14:00:00Z"),  # after the DST switch (EDT, UTC-4): Tuesday 10:00
                (someone, "2026-04-01T12:00:00Z"),  # outside the range
            ],
        )
    async with await api(ANALYST) as client:
        response = await client.get(
            "/v1/analytics/activity-heatmap",
            params={"community_id": community["id"], "from": "2026-03-01", "to": "2026-03-14"},
        )
    assert response.status_code == 200, response.text
    counts = response.json()["counts"]
    assert len(counts) == 7
    assert all(len(row) == 24 for row in counts)
    assert counts[0][23] == 1
    assert counts[1][0] == 2
    assert counts[1][10] == 1
    assert sum(map(sum, counts)) == 4


async def test_analytics_roles(api: ApiFactory) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        someone = await create_member(client)
    params = {"community_id": community["id"]}
    paths = ["engagement", "retention", "churn-risk", "activity-heatmap"]
    for identity in (member(someone["id"]), partner("read", "events:write")):
        async with await api(identity) as client:
            for path in paths:
                assert (await client.get(f"/v1/analytics/{path}", params=params)).status_code == 403
    async with await api(ANALYST) as client:
        for path in paths:
            assert (await client.get(f"/v1/analytics/{path}", params=params)).status_code == 200
