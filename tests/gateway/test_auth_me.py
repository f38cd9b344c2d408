"""`GET /v1/me` names the caller of every kind; no credentials is 401 with a challenge."""

import uuid

from tests.gateway.auth_helpers import get_me
from tests.system import System, member, partner, staff


async def test_me_for_staff(system: System) -> None:
    caller = staff("operator", "reviewer")
    async with await system.client(caller) as client:
        response = await client.get("/v1/me")
    assert response.status_code == 200
    assert response.json() == {
        "kind": "staff",
        "id": caller.id,
        "roles": ["operator", "reviewer"],
        "scopes": [],
        "member_id": None,
    }


async def test_me_for_member(system: System) -> None:
    member_id = uuid.uuid4()
    async with await system.client(member(member_id)) as client:
        response = await client.get("/v1/me")
    assert response.status_code == 200
    assert response.json() == {
        "kind": "member",
        "id": str(member_id),
        "roles": ["member"],
        "scopes": [],
        "member_id": str(member_id),
    }


async def test_me_for_partner(system: System) -> None:
    async with await system.client(partner("members:write", "events:write")) as client:
        response = await client.get("/v1/me")
        key_id = client.headers["X-API-Key"].removeprefix("qy_live_")[:32]
    assert response.status_code == 200
    assert response.json() == {
        "kind": "partner",
        "id": str(uuid.UUID(key_id)),
        "roles": [],
        "scopes": ["members:write", "events:write"],
        "member_id": None,
    }


async def test_me_without_credentials_is_401_with_challenge(system: System) -> None:
    response = await get_me(system, {})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "https://qunyun.dev/problems/unauthorized"


async def test_me_with_unknown_scheme_is_401(system: System) -> None:
    response = await get_me(system, {"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["type"] == "https://qunyun.dev/problems/invalid-token"


async def test_both_credentials_at_once_is_401(system: System) -> None:
    async with await system.client(partner("read")) as client:
        key = client.headers["X-API-Key"]
    async with await system.client(staff("admin")) as client:
        response = await client.get("/v1/me", headers={"X-API-Key": key})
    assert response.status_code == 401
