"""Rotating refresh tokens: each is spent once; replaying a spent one revokes its family."""

import asyncio

import httpx

from tests.gateway.auth_helpers import bearer, get_me, login_tokens, make_staff
from tests.system import System, staff

INVALID_REFRESH = "https://qunyun.dev/problems/invalid-refresh-token"


async def refresh(system: System, token: str) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_pair(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    response = await refresh(system, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "bearer"
    assert (await get_me(system, bearer(second["access_token"]))).status_code == 200
    third = await refresh(system, second["refresh_token"])
    assert third.status_code == 200


async def test_spent_token_is_refused_and_revokes_the_family(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    second = (await refresh(system, first["refresh_token"])).json()

    replay = await refresh(system, first["refresh_token"])
    assert replay.status_code == 401
    assert replay.json()["type"] == INVALID_REFRESH

    # The family is dead: the legitimate newest token fails too, and so does a second replay.
    assert (await refresh(system, second["refresh_token"])).status_code == 401
    assert (await refresh(system, first["refresh_token"])).status_code == 401


async def test_reuse_revokes_only_that_family(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    laptop = await login_tokens(system, "ops@example.com")
    phone = await login_tokens(system, "ops@example.com")
    await refresh(system, laptop["refresh_token"])
    assert (await refresh(system, laptop["refresh_token"])).status_code == 401
    assert (await refresh(system, phone["refresh_token"])).status_code == 200


async def test_unknown_refresh_token_is_401(system: System) -> None:
    response = await refresh(system, "qy_rt_" + "x" * 43)
    assert response.status_code == 401
    assert response.json()["type"] == INVALID_REFRESH
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_access_token_is_not_a_refresh_token(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    tokens = await login_tokens(system, "ops@example.com")
    assert (await refresh(system, tokens["access_token"])).status_code == 401


async def test_refresh_body_is_validated(system: System) -> None:
    async with system.anonymous() as client:
        missing = await client.post("/v1/auth/refresh", json={})
        extra = await client.post("/v1/auth/refresh", json={"refresh_token": "a", "grant": "x"})
        not_json = await client.post("/v1/auth/refresh", content=b"{", headers={"content-type": "application/json"})
    assert missing.status_code == extra.status_code == 422
    assert not_json.status_code == 400  # malformed JSON is a 400 `malformed-json` problem


async def test_revoke_logs_out_the_family(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    second = (await refresh(system, first["refresh_token"])).json()
    async with system.anonymous() as client:
        revoked = await client.post("/v1/auth/revoke", json={"refresh_token": first["refresh_token"]})
        unknown = await client.post("/v1/auth/revoke", json={"refresh_token": "qy_rt_unknown"})
    assert revoked.status_code == 204
    assert unknown.status_code == 204  # RFC 7009: nothing to tell about unknown tokens
    assert (await refresh(system, second["refresh_token"])).status_code == 401


async def test_disabled_staff_cannot_refresh(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    tokens = await login_tokens(system, "ops@example.com")
    async with await system.client(staff("admin")) as admin:
        assert (await admin.patch(f"/v1/staff/{account['id']}", json={"disabled": True})).status_code == 200
        assert (await admin.patch(f"/v1/staff/{account['id']}", json={"disabled": False})).status_code == 200
    # Re-enabling does not bring back the sessions that disabling ended.
    assert (await refresh(system, tokens["refresh_token"])).status_code == 401


async def test_password_change_ends_sessions(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    tokens = await login_tokens(system, "ops@example.com")
    async with await system.client(staff("admin")) as admin:
        changed = await admin.patch(f"/v1/staff/{account['id']}", json={"password": "a brand new passphrase"})
    assert changed.status_code == 200
    assert (await refresh(system, tokens["refresh_token"])).status_code == 401
    assert (await get_me(system, bearer(tokens["access_token"]))).status_code == 401
    assert (await login_tokens(system, "ops@example.com", "a brand new passphrase"))["access_token"]


async def test_concurrent_refreshes_of_one_token_give_one_winner(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    for _ in range(3):
        tokens = await login_tokens(system, "ops@example.com")
        answers = await asyncio.gather(*(refresh(system, tokens["refresh_token"]) for _ in range(8)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] + [401] * 7
        # The losers presented a spent token: the family, winner's new token included, is revoked.
        winner = next(a for a in answers if a.status_code == 200).json()
        assert (await refresh(system, winner["refresh_token"])).status_code == 401
