"""`ensure_admin`: the bootstrap admin is created once, and start-up creates it from settings."""

import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import col

from services.gateway.app import create_app
from services.gateway.auth.admin import ensure_admin
from services.gateway.auth.models import StaffAccount
from tests.gateway.auth_helpers import bearer, get_me, login, login_tokens
from tests.system import System


async def admins(system: System) -> list[StaffAccount]:
    async with system.state("gateway").db.session() as session:
        return list((await session.execute(sa.select(StaffAccount).order_by(col(StaffAccount.email)))).scalars())


async def ensure(system: System, email: str, password: str | None) -> tuple[bool, str | None]:
    db = system.state("gateway").db
    async with db.session() as session:
        result = await ensure_admin(session, email, password)
        await db.commit(session)
    return result


async def test_ensure_admin_creates_once(system: System) -> None:
    assert await ensure(system, "Boss@Example.com", "a long enough password") == (True, None)
    assert await ensure(system, "boss@example.com", "another long password") == (False, None)
    assert await ensure(system, "boss@example.com", None) == (False, None)
    rows = await admins(system)
    assert [(a.email, a.roles, a.disabled) for a in rows] == [("boss@example.com", ["admin"], False)]
    tokens = await login_tokens(system, "boss@example.com", "a long enough password")
    assert (await get_me(system, bearer(tokens["access_token"]))).json()["roles"] == ["admin"]


async def test_ensure_admin_generates_a_password_when_none_is_given(system: System) -> None:
    created, password = await ensure(system, "root@example.com", None)
    assert created is True
    assert password is not None
    assert len(password) >= 24
    assert (await login(system, "root@example.com", password)).status_code == 200


async def test_ensure_admin_refuses_a_short_password(system: System) -> None:
    try:
        await ensure(system, "root@example.com", "short")
    except ValueError:
        pass
    else:
        raise AssertionError("a short admin password was accepted")
    assert await admins(system) == []


async def test_gateway_start_creates_the_admin_from_settings(system: System) -> None:
    settings = system.settings.model_copy(
        update={"admin_email": "ops-lead@example.com", "admin_password": SecretStr("start-up password 1")}
    )
    for _ in range(2):  # a restart finds the admin and changes nothing
        app = create_app(settings, transport=system.transport)
        async with app.router.lifespan_context(app):
            pass
    rows = await admins(system)
    assert [a.email for a in rows] == ["ops-lead@example.com"]
    assert (await login(system, "ops-lead@example.com", "start-up password 1")).status_code == 200
