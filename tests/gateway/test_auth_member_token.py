"""`POST /v1/auth/member-token`: partners (scope `members:token`) and staff mint member tokens,
for members that the members service knows (`GET /internal/members/resolve`)."""

import uuid
from typing import Any

import httpx
import pytest

from services.common.identity import Identity
from tests.gateway.auth_helpers import bearer, get_me
from tests.system import System, member, partner, staff

MINTER = partner("members:token")


async def create_member(system: System, external_id: str) -> dict[str, Any]:
    async with system.direct("members", staff("operator")) as members:
        response = await members.post("/v1/members", json={"external_id": external_id, "display_name": "Mei"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def mint(system: System, caller: Identity, body: dict[str, Any]) -> httpx.Response:
    async with await system.client(caller) as client:
        return await client.post("/v1/auth/member-token", json=body)


async def test_partner_mints_a_token_by_member_id(system: System) -> None:
    created = await create_member(system, "crm-1")
    response = await mint(system, MINTER, {"member_id": created["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == system.settings.member_token_ttl_seconds
    assert body["member_id"] == created["id"]
    assert response.headers["cache-control"] == "no-store"
    me = (await get_me(system, bearer(body["access_token"]))).json()
    assert me == {"kind": "member", "id": created["id"], "roles": ["member"], "scopes": [], "member_id": created["id"]}


async def test_partner_mints_a_token_by_external_id(system: System) -> None:
    created = await create_member(system, "crm-2")
    response = await mint(system, MINTER, {"external_id": "crm-2"})
    assert response.status_code == 200, response.text
    assert response.json()["member_id"] == created["id"]


@pytest.mark.parametrize("caller", [staff("operator"), staff("admin")])
async def test_operators_and_admins_may_mint(system: System, caller: Identity) -> None:
    created = await create_member(system, "crm-3")
    assert (await mint(system, caller, {"member_id": created["id"]})).status_code == 200


async def test_unknown_member_is_404(system: System) -> None:
    by_id = await mint(system, MINTER, {"member_id": str(uuid.uuid4())})
    by_external = await mint(system, MINTER, {"external_id": "nobody"})
    assert by_id.status_code == by_external.status_code == 404
    assert by_id.json()["type"] == "https://qunyun.dev/problems/member-not-found"


@pytest.mark.parametrize(
    "caller", [partner("members:write", "read"), staff("agent", "reviewer", "analyst"), member(uuid.uuid4())]
)
async def test_others_get_403(system: System, caller: Identity) -> None:
    response = await mint(system, caller, {"member_id": str(uuid.uuid4())})
    assert response.status_code == 403


async def test_anonymous_gets_401(system: System) -> None:
    async with system.anonymous() as client:
        response = await client.post("/v1/auth/member-token", json={"member_id": str(uuid.uuid4())})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"member_id": str(uuid.uuid4()), "external_id": "x"},
        {"member_id": "nope"},
        {"external_id": ""},
        {"external_id": "\u00f9\u0087"},  # schemathesis: not an external id at all; was a 503
        {"external_id": "a b"},
    ],
)
async def test_exactly_one_reference_is_required(system: System, body: dict[str, Any]) -> None:
    response = await mint(system, MINTER, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_members_service_down_is_503(system: System) -> None:
    members = system.transport.apps.pop("members")
    try:
        response = await mint(system, MINTER, {"member_id": str(uuid.uuid4())})
    finally:
        system.transport.apps["members"] = members
    assert response.status_code == 503
    assert response.json()["type"] == "https://qunyun.dev/problems/service-unavailable"
