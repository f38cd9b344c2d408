"""Partner API keys: created by admins, shown once, stored hashed, listed without secrets, revocable."""

import hashlib
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from services.gateway.auth.models import ApiKey
from tests.system import System, partner, staff


async def create_key(system: System, name: str = "shop", scopes: list[str] | None = None) -> dict[str, Any]:
    async with await system.client(staff("admin")) as admin:
        response = await admin.post("/v1/api-keys", json={"name": name, "scopes": scopes or ["members:write"]})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def me_with_key(system: System, key: str) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.get("/v1/me", headers={"X-API-Key": key})


async def test_create_shows_the_key_once_and_stores_only_a_hash(system: System) -> None:
    created = await create_key(system, "CRM sync", ["members:write", "events:write"])
    assert created["name"] == "CRM sync"
    assert created["scopes"] == ["members:write", "events:write"]
    assert created["key"].startswith("qy_live_")
    assert created["prefix"] == f"qy_live_{uuid.UUID(created['id']).hex}"
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["created_at"].endswith("Z") or created["created_at"].endswith("+00:00")
    secret = created["key"].removeprefix(created["prefix"] + "_")
    assert len(secret) >= 43  # 256 random bits
    async with system.state("gateway").db.engine.connect() as conn:
        statement = sa.select(col(ApiKey.name), col(ApiKey.scopes), col(ApiKey.secret_hash))
        row = (await conn.execute(statement.where(col(ApiKey.id) == uuid.UUID(created["id"])))).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(tuple(row))


async def test_list_has_no_secrets(system: System) -> None:
    first = await create_key(system, "first")
    second = await create_key(system, "second", ["read"])
    async with await system.client(staff("admin")) as admin:
        response = await admin.get("/v1/api-keys")
        one = await admin.get(f"/v1/api-keys/{first['id']}")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["id"] for i in items] == [first["id"], second["id"]]
    assert all("key" not in i and "secret_hash" not in i for i in items)
    assert first["key"] not in response.text
    assert second["key"] not in response.text
    assert one.status_code == 200
    assert "key" not in one.json()


async def test_list_pages_with_a_cursor(system: System) -> None:
    made = [(await create_key(system, f"key {n}"))["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    async with await system.client(staff("admin")) as admin:
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await admin.get("/v1/api-keys", params=params)).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == made


async def test_key_authenticates_as_a_partner_with_its_scopes(system: System) -> None:
    created = await create_key(system, scopes=["members:token", "read"])
    response = await me_with_key(system, created["key"])
    assert response.status_code == 200
    assert response.json() == {
        "kind": "partner",
        "id": created["id"],
        "roles": [],
        "scopes": ["members:token", "read"],
        "member_id": None,
    }


async def test_use_records_last_used_at(system: System) -> None:
    created = await create_key(system)
    assert created["last_used_at"] is None
    assert (await me_with_key(system, created["key"])).status_code == 200
    async with await system.client(staff("admin")) as admin:
        listed = (await admin.get(f"/v1/api-keys/{created['id']}")).json()
    assert listed["last_used_at"] is not None


async def test_revoked_key_is_401_from_then_on(system: System) -> None:
    created = await create_key(system)
    assert (await me_with_key(system, created["key"])).status_code == 200  # now cached
    async with await system.client(staff("admin")) as admin:
        revoked = await admin.delete(f"/v1/api-keys/{created['id']}")
        again = await admin.delete(f"/v1/api-keys/{created['id']}")
        listed = (await admin.get("/v1/api-keys")).json()["items"]
        read = await admin.get(f"/v1/api-keys/{created['id']}")
    assert revoked.status_code == 204
    assert again.status_code == 404
    assert read.status_code == 404
    assert created["id"] not in [i["id"] for i in listed]
    response = await me_with_key(system, created["key"])
    assert response.status_code == 401
    assert response.json()["type"] == "https://qunyun.dev/problems/invalid-api-key"
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'


@pytest.mark.parametrize(
    "key",
    [
        "nonsense",
        "qy_live_" + "0" * 32 + "_" + "A" * 43,  # well-formed, unknown id
        "qy_live_" + "5" * 32,  # no secret part
    ],
)
async def test_bad_keys_are_401(system: System, key: str) -> None:
    response = await me_with_key(system, key)
    assert response.status_code == 401
    assert response.json()["type"] == "https://qunyun.dev/problems/invalid-api-key"


async def test_right_id_with_wrong_secret_is_401(system: System) -> None:
    created = await create_key(system)
    forged = created["prefix"] + "_" + "A" * 43
    assert (await me_with_key(system, forged)).status_code == 401
    assert (await me_with_key(system, created["key"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["members:write", "everything"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "read"},
        {"name": "", "scopes": ["read"]},
        {"name": "x" * 201, "scopes": ["read"]},
        {"scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "secret": "mine"},
    ],
)
async def test_invalid_bodies_are_422_and_create_nothing(system: System, body: dict[str, Any]) -> None:
    async with await system.client(staff("admin")) as admin:
        response = await admin.post("/v1/api-keys", json=body)
        listed = (await admin.get("/v1/api-keys")).json()["items"]
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert listed == []


async def test_unknown_scope_is_named_in_the_error(system: System) -> None:
    async with await system.client(staff("admin")) as admin:
        response = await admin.post("/v1/api-keys", json={"name": "x", "scopes": ["members:delete"]})
    assert response.status_code == 422
    assert "members:delete" in response.text


@pytest.mark.parametrize("caller", [staff("operator"), staff("analyst", "agent"), partner("members:write")])
async def test_only_admins_manage_keys(system: System, caller: Any) -> None:
    created = await create_key(system)
    async with await system.client(caller) as client:
        assert (await client.post("/v1/api-keys", json={"name": "x", "scopes": ["read"]})).status_code == 403
        assert (await client.get("/v1/api-keys")).status_code == 403
        assert (await client.delete(f"/v1/api-keys/{created['id']}")).status_code == 403
    assert (await me_with_key(system, created["key"])).status_code == 200


async def test_anonymous_cannot_manage_keys(system: System) -> None:
    async with system.anonymous() as client:
        response = await client.get("/v1/api-keys")
    assert response.status_code == 401
