"""Staff accounts: admins create, list, read and change them; everyone else gets 403."""

import asyncio
from typing import Any

import httpx
import pytest

from services.common.identity import Identity
from services.gateway.auth.tokens import issue_access_token
from tests.gateway.auth_helpers import bearer, get_me, login, login_tokens, make_staff
from tests.system import System, member, partner, staff

PASSWORD = "twelve chars at least"
NEW_STAFF: dict[str, Any] = {
    "email": "Agent.Smith@Example.com",
    "display_name": "Agent Smith",
    "password": PASSWORD,
    "roles": ["agent"],
}


async def admin_client(system: System) -> httpx.AsyncClient:
    return await system.client(staff("admin"))


async def create(system: System, *, by: Identity | None = None, **changes: Any) -> dict[str, Any]:
    async with await system.client(by or staff("admin")) as admin:
        response = await admin.post("/v1/staff", json=NEW_STAFF | changes)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_and_log_in(system: System) -> None:
    created = await create(system)
    assert created["email"] == "agent.smith@example.com"
    assert created["display_name"] == "Agent Smith"
    assert created["roles"] == ["agent"]
    assert created["disabled"] is False
    assert "password" not in created
    assert "password_hash" not in created
    tokens = await login_tokens(system, "agent.smith@example.com", PASSWORD)
    me = (await get_me(system, bearer(tokens["access_token"]))).json()
    assert me["id"] == created["id"]
    assert me["roles"] == ["agent"]


async def test_duplicate_email_in_any_case_is_409(system: System) -> None:
    await create(system)
    async with await admin_client(system) as admin:
        response = await admin.post("/v1/staff", json=NEW_STAFF | {"email": "AGENT.SMITH@example.COM"})
        listed = (await admin.get("/v1/staff")).json()["items"]
    assert response.status_code == 409
    assert response.json()["type"] == "https://qunyun.dev/problems/email-taken"
    assert sum(1 for s in listed if s["email"] == "agent.smith@example.com") == 1


async def test_concurrent_creates_with_one_email_give_one_account(system: System) -> None:
    async with await admin_client(system) as admin:
        answers = await asyncio.gather(
            *(
                admin.post("/v1/staff", json=NEW_STAFF | {"email": f"{case}@example.com"})
                for case in ("same", "SAME") * 3
            )
        )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5


@pytest.mark.parametrize(
    "changes",
    [
        {"password": "eleven char"},
        {"roles": ["member"]},
        {"roles": ["superuser"]},
        {"roles": []},
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"display_name": "   "},
        {"is_admin": True},
    ],
)
async def test_invalid_staff_is_422_and_nothing_is_created(system: System, changes: dict[str, Any]) -> None:
    async with await admin_client(system) as admin:
        response = await admin.post("/v1/staff", json=NEW_STAFF | changes)
        listed = (await admin.get("/v1/staff")).json()["items"]
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "agent.smith@example.com" not in [s["email"] for s in listed]


async def test_read_and_list(system: System) -> None:
    first = await create(system)
    second = await create(system, email="second@example.com", roles=["operator", "analyst"])
    async with await admin_client(system) as admin:
        one = await admin.get(f"/v1/staff/{second['id']}")
        missing = await admin.get("/v1/staff/00000000-0000-4000-8000-000000000000")
        everyone = (await admin.get("/v1/staff")).json()
        operators = (await admin.get("/v1/staff", params={"role": "operator"})).json()
        bad_role = await admin.get("/v1/staff", params={"role": "wizard"})
    assert one.json() == second
    assert missing.status_code == 404
    ids = [s["id"] for s in everyone["items"]]
    assert ids.index(first["id"]) < ids.index(second["id"])
    assert [s["id"] for s in operators["items"]] == [second["id"]]
    assert bad_role.status_code == 422


async def test_list_pages(system: System) -> None:
    made = [(await create(system, email=f"s{n}@example.com"))["id"] for n in range(5)]
    seen: list[str] = []
    async with await admin_client(system) as admin:
        page = (await admin.get("/v1/staff", params={"limit": 2, "disabled": "false"})).json()
        while True:
            seen += [s["id"] for s in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 2, "disabled": "false", "cursor": page["next_cursor"]}
            page = (await admin.get("/v1/staff", params=params)).json()
        bad = await admin.get("/v1/staff", params={"cursor": "garbage!"})
    assert [s for s in seen if s in made] == made
    assert bad.status_code == 422


async def test_patch_changes_fields(system: System) -> None:
    created = await create(system)
    async with await admin_client(system) as admin:
        response = await admin.patch(
            f"/v1/staff/{created['id']}", json={"display_name": "A. Smith", "roles": ["agent", "reviewer"]}
        )
    assert response.status_code == 200
    body = response.json()
    assert (body["display_name"], body["roles"], body["email"]) == ("A. Smith", ["agent", "reviewer"], created["email"])
    assert body["updated_at"] >= created["updated_at"]


async def test_role_change_applies_to_existing_tokens(system: System) -> None:
    created = await create(system)
    tokens = await login_tokens(system, created["email"], PASSWORD)
    assert (await get_me(system, bearer(tokens["access_token"]))).json()["roles"] == ["agent"]
    async with await admin_client(system) as admin:
        await admin.patch(f"/v1/staff/{created['id']}", json={"roles": ["operator"]})
    assert (await get_me(system, bearer(tokens["access_token"]))).json()["roles"] == ["operator"]


@pytest.mark.parametrize(
    "body", [{"roles": ["member"]}, {"password": "short"}, {"display_name": None}, {"disabled": "maybe"}, {"x": 1}]
)
async def test_invalid_patch_is_422_and_changes_nothing(system: System, body: dict[str, Any]) -> None:
    created = await create(system)
    async with await admin_client(system) as admin:
        response = await admin.patch(f"/v1/staff/{created['id']}", json=body)
        after = (await admin.get(f"/v1/staff/{created['id']}")).json()
    assert response.status_code == 422
    assert after == created


async def test_patch_unknown_staff_is_404(system: System) -> None:
    async with await admin_client(system) as admin:
        response = await admin.patch("/v1/staff/00000000-0000-4000-8000-000000000000", json={"disabled": True})
    assert response.status_code == 404


async def test_password_change_lets_the_new_password_in(system: System) -> None:
    created = await create(system)
    async with await admin_client(system) as admin:
        await admin.patch(f"/v1/staff/{created['id']}", json={"password": "another long password"})
    assert (await login(system, created["email"], PASSWORD)).status_code == 401
    assert (await login(system, created["email"], "another long password")).status_code == 200


async def test_last_active_admin_cannot_be_demoted_or_disabled(system: System) -> None:
    helper = staff("admin")
    only = await create(system, by=helper, email="root@example.com", roles=["admin"])
    helper_id = helper.id
    tokens = await login_tokens(system, "root@example.com", PASSWORD)
    async with system.anonymous() as client:
        client.headers.update(bearer(tokens["access_token"]))
        # The test's helper admin steps down, so root is the only active admin left.
        assert (await client.patch(f"/v1/staff/{helper_id}", json={"roles": ["operator"]})).status_code == 200
        demote = await client.patch(f"/v1/staff/{only['id']}", json={"roles": ["operator"]})
        disable = await client.patch(f"/v1/staff/{only['id']}", json={"disabled": True})
        still = (await client.get(f"/v1/staff/{only['id']}")).json()
        second = await client.post("/v1/staff", json=NEW_STAFF | {"email": "two@example.com", "roles": ["admin"]})
        demote_now = await client.patch(f"/v1/staff/{only['id']}", json={"roles": ["operator"]})
    assert demote.status_code == disable.status_code == 409
    assert demote.json()["type"] == "https://qunyun.dev/problems/last-admin"
    assert (still["roles"], still["disabled"]) == (["admin"], False)
    assert second.status_code == 201
    assert demote_now.status_code == 200


async def test_two_admins_demoting_each_other_at_once_leave_one(system: System) -> None:
    for round_ in range(5):
        await system.reset()
        one = await make_staff(system, f"one{round_}@example.com", "admin")
        two = await make_staff(system, f"two{round_}@example.com", "admin")
        tokens = [issue_access_token(system.settings, "staff", s["id"], version=1)[0] for s in (one, two)]
        async with system.anonymous() as client:
            answers = await asyncio.gather(
                client.patch(f"/v1/staff/{two['id']}", json={"roles": ["agent"]}, headers=bearer(tokens[0])),
                client.patch(f"/v1/staff/{one['id']}", json={"roles": ["agent"]}, headers=bearer(tokens[1])),
            )
        # One demotion wins; the other is refused: 409 (it would remove the last admin) or, when
        # its caller was already demoted by the time it was identified, 403.
        statuses = sorted(a.status_code for a in answers)
        assert statuses[0] == 200, statuses
        assert statuses[1] in (403, 409), statuses


@pytest.mark.parametrize("caller", [staff("operator"), staff("agent", "reviewer", "analyst"), partner("read")])
async def test_non_admins_get_403(system: System, caller: Any) -> None:
    created = await create(system)
    async with await system.client(caller) as client:
        answers = [
            await client.post("/v1/staff", json=NEW_STAFF | {"email": "x@example.com"}),
            await client.get("/v1/staff"),
            await client.get(f"/v1/staff/{created['id']}"),
            await client.patch(f"/v1/staff/{created['id']}", json={"disabled": True}),
        ]
    assert [a.status_code for a in answers] == [403] * 4
    assert all(a.json()["type"] == "https://qunyun.dev/problems/forbidden" for a in answers)


async def test_members_get_403(system: System) -> None:
    async with await system.client(member("6f1c1f4e-4f0a-4f7e-9a38-5d2c1e0f9b11")) as client:
        assert (await client.get("/v1/staff")).status_code == 403


async def test_anonymous_gets_401(system: System) -> None:
    async with system.anonymous() as client:
        response = await client.get("/v1/staff")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
