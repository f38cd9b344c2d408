"""Member token revocation: erasure (`member.erased`) and `POST /v1/members/{id}/revoke-tokens`
bump the member's token version; tokens minted before are refused, at once on the replica
that applied the change and within the version cache's TTL on the others."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from services.common.identity import Identity
from services.gateway.auth.member_tokens import revoke_member_tokens
from services.gateway.auth.state import MEMBER_VERSION_CACHE_SECONDS, auth_state
from tests.gateway.auth_helpers import bearer, get_me
from tests.gateway.test_auth_member_token import MINTER, create_member, mint
from tests.system import System, member, partner, staff

INVALID_TOKEN = "https://qunyun.dev/problems/invalid-token"


async def mint_token(system: System, member_id: str) -> str:
    response = await mint(system, MINTER, {"member_id": member_id})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]  # type: ignore[no-any-return]


async def revoke(system: System, member_id: str, headers: dict[str, str]) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.post(f"/v1/members/{member_id}/revoke-tokens", headers=headers)


async def revoke_as(system: System, caller: Identity, member_id: str) -> httpx.Response:
    async with await system.client(caller) as client:
        return await client.post(f"/v1/members/{member_id}/revoke-tokens")


def assert_revoked(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["type"] == INVALID_TOKEN
    assert response.json()["detail"] == "The access token was revoked."


async def test_member_tokens_carry_the_current_version(system: System) -> None:
    created = await create_member(system, "crm-ver")
    token = await mint_token(system, created["id"])
    assert jwt.decode(token, options={"verify_signature": False})["ver"] == 0
    assert (await revoke(system, created["id"], bearer(token))).status_code == 204
    assert jwt.decode(await mint_token(system, created["id"]), options={"verify_signature": False})["ver"] == 1


async def test_erasure_revokes_the_members_tokens(system: System) -> None:
    created = await create_member(system, "crm-erase")
    token = await mint_token(system, created["id"])
    async with system.anonymous() as client:
        assert (await client.get(f"/v1/members/{created['id']}", headers=bearer(token))).status_code == 200
        assert (await client.delete(f"/v1/members/{created['id']}", headers=bearer(token))).status_code == 204
    # Until the gateway has applied `member.erased`, the token still opens the gateway's door.
    assert (await get_me(system, bearer(token))).status_code == 200
    await system.drain()
    # This replica applied the event and dropped its cached version: refused at once.
    assert_revoked(await get_me(system, bearer(token)))
    async with system.anonymous() as client:
        assert_revoked(await client.get(f"/v1/members/{created['id']}", headers=bearer(token)))
    # And no new token can be minted for an erased member.
    assert (await mint(system, MINTER, {"member_id": created["id"]})).status_code == 404


async def test_a_replica_that_cached_the_old_version_refuses_within_the_cache_ttl(system: System) -> None:
    created = await create_member(system, "crm-replica")
    token = await mint_token(system, created["id"])
    assert (await get_me(system, bearer(token))).status_code == 200  # version cached here
    # Another replica applies the revocation: this one's cache is not told.
    db = system.state("gateway").db
    async with db.session() as session:
        await revoke_member_tokens(session, [uuid.UUID(created["id"])])
        await db.commit(session)
    assert (await get_me(system, bearer(token))).status_code == 200  # still inside the bound
    cache = auth_state(system.apps["gateway"]).member_versions
    cache.clock = lambda: time.monotonic() + MEMBER_VERSION_CACHE_SECONDS + 0.001  # the TTL has passed
    try:
        assert_revoked(await get_me(system, bearer(token)))
    finally:
        cache.clock = time.monotonic
        cache.clear()


async def test_a_redelivered_erasure_bumps_the_version_once(system: System) -> None:
    created = await create_member(system, "crm-redeliver")
    event = {
        "id": str(uuid.uuid4()),
        "type": "member.erased",
        "source": "members",
        "occurred_at": "2026-11-21T08:00:00Z",
        "data": {"member_id": created["id"], "erased_at": "2026-11-21T08:00:00Z"},
    }
    async with system.direct("gateway", Identity(kind="system", id="members")) as gateway:
        for _ in range(2):
            response = await gateway.post("/internal/events", json={"events": [event, event]})
            assert response.status_code == 200, response.text
    async with system.state("gateway").db.engine.connect() as conn:
        version = (
            await conn.execute(
                sa.text("SELECT version FROM member_token_versions WHERE member_id = :id"), {"id": created["id"]}
            )
        ).scalar_one()
    assert version == 1


async def test_the_member_revokes_its_own_tokens(system: System) -> None:
    created = await create_member(system, "crm-self")
    old = await mint_token(system, created["id"])
    other_old = await mint_token(system, created["id"])
    assert (await get_me(system, bearer(old))).status_code == 200
    revoked = await revoke(system, created["id"], bearer(old))
    assert revoked.status_code == 204
    assert revoked.content == b""
    assert_revoked(await get_me(system, bearer(old)))
    assert_revoked(await get_me(system, bearer(other_old)))
    fresh = await mint_token(system, created["id"])
    assert (await get_me(system, bearer(fresh))).status_code == 200
    async with system.anonymous() as client:
        assert (await client.get(f"/v1/members/{created['id']}", headers=bearer(fresh))).status_code == 200
    # Safe to repeat: again 204, and again only the tokens minted before stop working.
    assert (await revoke(system, created["id"], bearer(fresh))).status_code == 204
    assert_revoked(await get_me(system, bearer(fresh)))
    assert (await get_me(system, bearer(await mint_token(system, created["id"])))).status_code == 200


async def test_an_admin_revokes_a_members_tokens(system: System) -> None:
    created = await create_member(system, "crm-admin")
    token = await mint_token(system, created["id"])
    assert (await revoke_as(system, staff("admin"), created["id"])).status_code == 204
    assert_revoked(await get_me(system, bearer(token)))
    unknown = await revoke_as(system, staff("admin"), str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "https://qunyun.dev/problems/member-not-found"


async def test_another_member_gets_404(system: System) -> None:
    victim = await create_member(system, "crm-victim")
    token = await mint_token(system, victim["id"])
    response = await revoke_as(system, member(uuid.uuid4()), victim["id"])
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await get_me(system, bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "caller", [staff("operator"), staff("agent", "analyst"), partner("members:token", "members:write", "read")]
)
async def test_other_staff_and_partners_get_403(system: System, caller: Identity) -> None:
    victim = await create_member(system, "crm-403")
    token = await mint_token(system, victim["id"])
    response = await revoke_as(system, caller, victim["id"])
    assert response.status_code == 403
    assert (await get_me(system, bearer(token))).status_code == 200


async def test_anonymous_is_401_and_a_bad_id_422(system: System) -> None:
    async with system.anonymous() as client:
        anonymous = await client.post(f"/v1/members/{uuid.uuid4()}/revoke-tokens")
    bad_id = await revoke_as(system, staff("admin"), "not-a-uuid")
    assert anonymous.status_code == 401
    assert bad_id.status_code == 422


def _operation(document: dict[str, Any]) -> dict[str, Any]:
    return document["paths"]["/v1/members/{member_id}/revoke-tokens"]["post"]  # type: ignore[no-any-return]


async def test_the_endpoint_is_in_the_openapi_document(system: System) -> None:
    async with system.anonymous() as client:
        document = (await client.get("/openapi.json")).json()
    operation = _operation(document)
    assert operation["summary"]
    assert {"204", "401", "403", "404", "422"} <= set(operation["responses"])
