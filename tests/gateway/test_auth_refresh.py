"""Rotating refresh tokens: each is spent once; replaying a spent one revokes its family,
except for a duplicate within the reuse grace, which gets the successor already issued."""

import asyncio

import httpx
import sqlalchemy as sa

from tests.gateway.auth_helpers import bearer, get_me, login_tokens, make_staff
from tests.system import System, staff

INVALID_REFRESH = "https://qunyun.dev/problems/invalid-refresh-token"


async def refresh(system: System, token: str) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def age_spends(system: System, seconds: float) -> None:
    """As if `seconds` had passed since every refresh token was spent."""
    async with system.state("gateway").db.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE refresh_tokens SET spent_at = spent_at - make_interval(secs => :s) WHERE spent_at IS NOT NULL"
            ),
            {"s": seconds},
        )


async def age_past_the_grace(system: System) -> None:
    await age_spends(system, system.settings.refresh_reuse_grace_seconds + 1)


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
    await age_past_the_grace(system)

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
    await age_past_the_grace(system)
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


async def test_a_duplicate_within_the_grace_gets_the_same_successor(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    second = (await refresh(system, first["refresh_token"])).json()
    await age_spends(system, system.settings.refresh_reuse_grace_seconds - 2)  # still inside
    duplicate = await refresh(system, first["refresh_token"])
    assert duplicate.status_code == 200, duplicate.text
    assert duplicate.headers["cache-control"] == "no-store"
    again = duplicate.json()
    assert again["refresh_token"] == second["refresh_token"]
    assert again["access_token"] != second["access_token"]  # a fresh one, for the same account
    assert 0 < again["refresh_expires_in"] <= second["refresh_expires_in"]
    assert (await get_me(system, bearer(again["access_token"]))).status_code == 200
    # The family lives on: the successor is spent normally.
    assert (await refresh(system, second["refresh_token"])).status_code == 200


async def test_only_the_immediate_unspent_successor_qualifies(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    second = (await refresh(system, first["refresh_token"])).json()
    third = (await refresh(system, second["refresh_token"])).json()
    # `first`'s successor is spent already: presenting `first` again is a replay, grace or not.
    replay = await refresh(system, first["refresh_token"])
    assert replay.status_code == 401
    assert replay.json()["type"] == INVALID_REFRESH
    assert (await refresh(system, third["refresh_token"])).status_code == 401


async def test_no_grace_for_a_logged_out_or_disabled_login(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    await refresh(system, first["refresh_token"])
    async with system.anonymous() as client:
        assert (await client.post("/v1/auth/revoke", json={"refresh_token": first["refresh_token"]})).status_code == 204
    assert (await refresh(system, first["refresh_token"])).status_code == 401

    other = await login_tokens(system, "ops@example.com")
    await refresh(system, other["refresh_token"])
    async with await system.client(staff("admin")) as admin:
        assert (await admin.patch(f"/v1/staff/{account['id']}", json={"disabled": True})).status_code == 200
    assert (await refresh(system, other["refresh_token"])).status_code == 401


async def test_concurrent_refreshes_of_one_token_share_one_successor(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    for _ in range(3):
        tokens = await login_tokens(system, "ops@example.com")
        answers = await asyncio.gather(*(refresh(system, tokens["refresh_token"]) for _ in range(8)))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        # One spend won; the others waited for its commit and were given its successor.
        successors = {a.json()["refresh_token"] for a in answers}
        assert len(successors) == 1
        successor = successors.pop()
        for answer in answers:
            assert (await get_me(system, bearer(answer.json()["access_token"]))).status_code == 200
        # A reuse after the grace is a replay: the whole family, successor included, is revoked.
        await age_past_the_grace(system)
        replay = await refresh(system, tokens["refresh_token"])
        assert replay.status_code == 401
        assert replay.json()["type"] == INVALID_REFRESH
        assert (await refresh(system, successor)).status_code == 401


async def test_concurrent_refreshes_of_a_successor_and_its_duplicate(system: System) -> None:
    """Two tabs: both refresh `first` at once, then both refresh what they got at once."""
    await make_staff(system, "ops@example.com", "operator")
    first = await login_tokens(system, "ops@example.com")
    round_one = await asyncio.gather(*(refresh(system, first["refresh_token"]) for _ in range(2)))
    assert [a.status_code for a in round_one] == [200, 200]
    second = round_one[0].json()["refresh_token"]
    round_two = await asyncio.gather(*(refresh(system, second) for _ in range(2)))
    assert [a.status_code for a in round_two] == [200, 200]
    assert round_two[0].json()["refresh_token"] == round_two[1].json()["refresh_token"] != second
