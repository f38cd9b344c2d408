"""DESIGN.md flow 1 on real processes: `qunyun up`, real HTTP, the relays running on their own.

The admin logs in, creates a partner key; the partner creates a member in a community and
mints a member token; the member checks in; the test then only polls, until the members
relay has delivered `activity.recorded` to rewards and the points show up.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.runner import QunyunRun, scratch_dir, start_qunyun

# One system for the module (a start costs seconds of CPU): the tests run on one xdist worker
# (tests/conftest.py, SHARED_SYSTEM_MODULES).
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running() -> Iterator[QunyunRun]:
    """The embedded server, what `make run` gives a newcomer; access logs on."""
    with (
        scratch_dir("qunyun-flows-") as workdir,
        start_qunyun(workdir, QUNYUN_RELAY_INTERVAL_MS="200", QUNYUN_LOG_LEVEL="INFO") as run,
    ):
        yield run


def created(answer: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


def poll_points(member: httpx.Client, member_id: str, balance: int, timeout: float = 30) -> dict[str, Any]:
    """The member's points once the balance reaches `balance` (the relay runs on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        points = created(member.get(f"/v1/members/{member_id}/points"), 200)
        if points["balance"] >= balance or time.monotonic() > deadline:
            return points
        time.sleep(0.2)


def onboard(run: QunyunRun) -> tuple[dict[str, str], str, str, str]:
    """Admin login, partner key, community, member, member token: (partner headers, community, member, token)."""
    with run.client(headers=run.admin_headers()) as admin:
        key = created(
            admin.post(
                "/v1/api-keys",
                json={"name": "bot", "scopes": ["members:write", "members:token", "events:write", "read"]},
            )
        )
        community = created(admin.post("/v1/communities", json={"name": "Tea lovers", "timezone": "Asia/Shanghai"}))
    partner_headers = {"X-API-Key": key["key"]}
    with run.client(headers=partner_headers) as partner:
        member = created(partner.post("/v1/members", json={"external_id": "wx-10001", "display_name": "Lin"}))
        created(partner.post(f"/v1/communities/{community['id']}/members", json={"member_id": member["id"]}))
        token = created(partner.post("/v1/auth/member-token", json={"external_id": "wx-10001"}), 200)
    return partner_headers, community["id"], member["id"], token["access_token"]


def test_a_check_in_earns_points_through_the_running_relay(running: QunyunRun) -> None:
    run = running
    partner_headers, community_id, member_id, token = onboard(run)
    with run.client(headers={"Authorization": f"Bearer {token}"}) as member:
        assert created(member.get("/v1/me"), 200)["member_id"] == member_id
        event_id = str(uuid.uuid4())
        accepted = created(
            member.post("/v1/events", json={"id": event_id, "community_id": community_id, "type": "check_in"}),
            202,
        )
        assert accepted == {"id": event_id, "duplicate": False}

        points = poll_points(member, member_id, 5)
        assert (points["balance"], points["lifetime"], points["streak_days"]) == (5, 5, 1), points
        (entry,) = created(member.get(f"/v1/members/{member_id}/points/ledger"), 200)["items"]
        assert (entry["reason"], entry["source_event_id"]) == ("earned:check_in", event_id)
        assert created(member.get(f"/v1/members/{member_id}"), 200)["last_active_at"] is not None

    # The partner reports one more activity for the member by external id: relayed too.
    with run.client(headers=partner_headers) as partner:
        created(
            partner.post(
                "/v1/events",
                json={"external_id": "wx-10001", "community_id": community_id, "type": "invite_accepted"},
            ),
            202,
        )
        assert poll_points(partner, member_id, 25)["balance"] == 25

    # A flash redemption on the embedded server: 50 at once by a member who can afford 25.
    # Row locks hold here as in production: only 201 and 409, never a 500.
    with run.client(headers=run.admin_headers()) as admin:
        reward = created(
            admin.post("/v1/rewards", json={"name": "Sticker", "cost": 1, "stock": 100, "per_member_limit": 100})
        )
    answers = asyncio.run(redeem_at_once(run, token, reward["id"], 50))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 25, 409: 25}, [answer.text for answer in answers if answer.status_code != 201]
    refused = {answer.json()["type"] for answer in answers if answer.status_code == 409}
    assert refused == {"https://qunyun.dev/problems/insufficient-points"}
    with run.client(headers={"Authorization": f"Bearer {token}"}) as member:
        assert created(member.get(f"/v1/members/{member_id}/points"), 200)["balance"] == 0


async def redeem_at_once(run: QunyunRun, token: str, reward_id: str, count: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=run.urls["gateway"], timeout=30, trust_env=False, headers=headers) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/redemptions", json={"reward_id": reward_id}, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                for _ in range(count)
            )
        )


def test_request_id_round_trips_through_the_gateway(running: QunyunRun) -> None:
    run = running
    with run.client(headers=run.admin_headers()) as admin:
        request_id = f"flows-{uuid.uuid4().hex}"
        answer = admin.get("/v1/members", headers={"X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == request_id
        assert answer.headers.get_list("x-request-id") == [request_id]  # the service's is not doubled

        # Problems carry it too; a missing or malformed one is replaced by a fresh id.
        missing = admin.get(f"/v1/members/{uuid.uuid4()}", headers={"X-Request-ID": request_id + "-404"})
        assert (missing.status_code, missing.headers["x-request-id"]) == (404, request_id + "-404")
        fresh = admin.get("/v1/members").headers["x-request-id"]
        assert fresh
        assert fresh != request_id
        replaced = admin.get("/v1/members", headers={"X-Request-ID": "bad id with spaces"})
        assert replaced.headers["x-request-id"] != "bad id with spaces"

    # The members process logged the request under the same id: the proxy forwarded it.
    def members_saw_it() -> bool:
        for line in list(run.output):
            service, _, log_line = line.partition(" | ")
            if service.strip() == "members" and log_line.startswith("{") and request_id in log_line:
                record = json.loads(log_line)
                if record.get("request_id") == request_id and record.get("route") == "/v1/members":
                    return True
        return False

    deadline = time.monotonic() + 10
    while not members_saw_it():
        assert time.monotonic() < deadline, f"members never logged {request_id}:\n{run.text()}"
        time.sleep(0.1)
