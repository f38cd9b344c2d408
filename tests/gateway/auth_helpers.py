"""Small factories for the gateway auth tests: staff accounts with a known password, logins."""

from __future__ import annotations

from typing import Any

import httpx

from services.gateway.auth.schemas import StaffCreate
from services.gateway.auth.staff import create_staff
from tests.gateway_auth import STAFF_PASSWORD, staff_password_hash
from tests.system import System

PASSWORD = STAFF_PASSWORD


async def make_staff(
    system: System, email: str, *roles: str, password_hash: str | None = None, disabled: bool = False
) -> dict[str, Any]:
    """A staff account whose password is PASSWORD (unless a hash is given)."""
    db = system.state("gateway").db
    async with db.session() as session:
        account = await create_staff(
            session,
            StaffCreate(
                email=email, display_name=email.split("@")[0], password=PASSWORD, roles=list(roles or ["operator"])
            ),
            password_hash=password_hash or staff_password_hash(),
        )
        account.disabled = disabled
        await db.commit(session)
    return {"id": str(account.id), "email": account.email}


async def login(system: System, email: str, password: str = PASSWORD) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.post("/v1/auth/token", data={"username": email, "password": password})


async def login_tokens(system: System, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await login(system, email, password)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get_me(system: System, headers: dict[str, str]) -> httpx.Response:
    async with system.anonymous() as client:
        return await client.get("/v1/me", headers=headers)
