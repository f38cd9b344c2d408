"""`POST /v1/auth/token`: password logins, their failures, and rehashing on new argon2 parameters."""

import statistics
import time
import uuid

from argon2 import PasswordHasher

from services.gateway.auth.models import StaffAccount
from services.gateway.auth.passwords import needs_rehash
from tests.gateway.auth_helpers import PASSWORD, bearer, get_me, login, login_tokens, make_staff
from tests.system import System, staff


async def test_login_gives_working_tokens(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    response = await login(system, "ops@example.com")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == system.settings.access_token_ttl_seconds
    assert body["refresh_token"].startswith("qy_rt_")
    me = await get_me(system, bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == account["id"]
    assert me.json()["roles"] == ["operator"]


async def test_login_email_is_case_insensitive(system: System) -> None:
    await make_staff(system, "Mixed.Case@Example.com", "agent")
    assert (await login(system, "  mixed.case@EXAMPLE.com")).status_code == 200


async def test_login_records_last_login(system: System) -> None:
    account = await make_staff(system, "seen@example.com", "analyst")
    await login_tokens(system, "seen@example.com")
    async with await system.client(staff("admin")) as client:
        read = (await client.get(f"/v1/staff/{account['id']}")).json()
    assert read["last_login_at"] is not None


async def test_wrong_password_is_401(system: System) -> None:
    await make_staff(system, "ops@example.com")
    response = await login(system, "ops@example.com", "not the password")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://qunyun.dev/problems/invalid-credentials"
    assert problem["error"] == "invalid_grant"
    assert "www-authenticate" in response.headers


async def test_unknown_user_is_the_same_401(system: System) -> None:
    await make_staff(system, "ops@example.com")
    unknown = await login(system, "nobody@example.com", PASSWORD)
    wrong = await login(system, "ops@example.com", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert {k: v for k, v in unknown.json().items() if k != "instance"} == {
        k: v for k, v in wrong.json().items() if k != "instance"
    }


async def test_unknown_user_costs_as_much_time_as_a_wrong_password(system: System) -> None:
    await make_staff(system, "ops@example.com")

    async def median_seconds(email: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert (await login(system, email, "not the password")).status_code == 401
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    wrong = await median_seconds("ops@example.com")
    unknown = await median_seconds("nobody@example.com")
    # Without the dummy verification an unknown user answers in ~1 ms against ~50 ms of argon2.
    assert unknown > wrong * 0.5


async def test_disabled_staff_cannot_log_in(system: System) -> None:
    await make_staff(system, "gone@example.com", "operator", disabled=True)
    response = await login(system, "gone@example.com")
    assert response.status_code == 401
    assert response.json()["type"] == "https://qunyun.dev/problems/account-disabled"


async def test_disabling_staff_stops_their_access_token(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    tokens = await login_tokens(system, "ops@example.com")
    assert (await get_me(system, bearer(tokens["access_token"]))).status_code == 200
    async with await system.client(staff("admin")) as admin:
        patched = await admin.patch(f"/v1/staff/{account['id']}", json={"disabled": True})
    assert patched.status_code == 200
    assert patched.json()["disabled"] is True
    response = await get_me(system, bearer(tokens["access_token"]))
    assert response.status_code == 401
    assert response.json()["type"] == "https://qunyun.dev/problems/invalid-token"


async def test_login_form_needs_both_fields(system: System) -> None:
    async with system.anonymous() as client:
        response = await client.post("/v1/auth/token", data={"username": "ops@example.com"})
        as_json = await client.post("/v1/auth/token", json={"username": "a@b.c", "password": "x" * 12})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert as_json.status_code == 422


async def test_password_hashed_with_old_parameters_is_rehashed_at_login(system: System) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    account = await make_staff(system, "old@example.com", "agent", password_hash=weak)
    await login_tokens(system, "old@example.com")
    async with system.state("gateway").db.session() as session:
        stored = await session.get(StaffAccount, uuid.UUID(account["id"]))
    assert stored is not None
    assert stored.password_hash != weak
    assert not needs_rehash(stored.password_hash)
    assert (await login(system, "old@example.com")).status_code == 200
