"""The `qunyun` console script: argument checks, migrate, create-admin, and safe settings.

With no QUNYUN_DATABASE_URL the commands work on the embedded PostgreSQL under the data
dir. Most tests share one server, started once for the module (as a running `qunyun up`
would hold it): the commands attach to it and leave it running. The others start from an
empty data dir, where each command starts a server for itself and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from services.cli import app
from services.common.embedded_postgres import EmbeddedPostgres
from services.common.migrations import drop_database, version_table
from services.common.settings import SERVICES, Settings
from services.gateway.auth.passwords import verify_password
from services.supervisor import Supervisor
from tests.e2e.runner import free_port_base, is_alive, postgres_processes, scratch_dir, wait_until_gone
from tests.pg import pg_url

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QUNYUN_* setting from the caller's shell leaks into these tests."""
    for name in [key for key in os.environ if key.startswith("QUNYUN_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """pytest's tmp_path, moved where the embedded server's account can reach it."""
    with scratch_dir("qunyun-cli-") as path:
        yield path


@pytest.fixture(scope="module")
def shared_server() -> Iterator[EmbeddedPostgres]:
    """An embedded server on a data dir of its own, running for the whole module."""
    with scratch_dir("qunyun-cli-") as workdir:
        server = EmbeddedPostgres(workdir / "var" / "postgres")
        server.start()
        try:
            yield server
        finally:
            server.stop()
        assert postgres_processes(server.pgdata) == []


@pytest.fixture
def data_env(shared_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QUNYUN_DATA_DIR pointing at the shared server's data dir, with none of qunyun's databases in it."""
    data_dir = shared_server.pgdata.parent
    monkeypatch.setenv("QUNYUN_DATA_DIR", str(data_dir))

    async def drop_all() -> None:
        settings = Settings()
        for name in SERVICES:
            await drop_database(settings.database_url_for(name))

    asyncio.run(drop_all())
    return data_dir


@pytest.fixture
def empty_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QUNYUN_DATA_DIR pointing at a data dir that does not exist yet."""
    monkeypatch.setenv("QUNYUN_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


async def _fetch(server: EmbeddedPostgres, database: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(host=str(server.socket_dir), user="postgres", database=database)
    try:
        return [row[0] for row in await conn.fetch(query)]
    finally:
        await conn.close()


def _tables(server: EmbeddedPostgres, database: str) -> set[str]:
    return set(asyncio.run(_fetch(server, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))


def _qunyun_databases(server: EmbeddedPostgres) -> set[str]:
    names = asyncio.run(_fetch(server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'qunyun%'"))
    return set(names)


def test_migrate_creates_every_database(shared_server: EmbeddedPostgres, data_env: Path) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    for name in SERVICES:
        assert f"{name}: created database" in result.output
        assert f"{name}: migrated" in result.output
        assert version_table(name) in _tables(shared_server, f"qunyun_{name}")
    assert "staff_accounts" in _tables(shared_server, "qunyun_gateway")

    again = runner.invoke(app, ["migrate"])
    assert again.exit_code == 0, again.output
    assert "created database" not in again.output


def test_commands_attach_to_a_running_server_and_leave_it_running(
    shared_server: EmbeddedPostgres, data_env: Path
) -> None:
    postmaster = shared_server.pid
    assert postmaster is not None
    result = runner.invoke(app, ["migrate", "rewards"])
    assert result.exit_code == 0, result.output
    assert shared_server.pid == postmaster
    assert is_alive(postmaster)
    assert _qunyun_databases(shared_server) == {"qunyun_rewards"}


@pytest.mark.parametrize("command", [["migrate", "billing"], ["serve", "billing"]])
def test_unknown_service_is_a_usage_error(empty_env: Path, command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "unknown service 'billing'" in result.output
    assert not empty_env.exists()


def test_create_admin_refuses_a_short_password(empty_env: Path) -> None:
    result = runner.invoke(app, ["create-admin", "--email", "ops@example.com", "--password", "short-pass1"])
    assert result.exit_code == 2
    assert "at least 12 characters" in result.output
    assert not empty_env.exists()


def test_create_admin_refuses_a_bad_email(empty_env: Path) -> None:
    result = runner.invoke(app, ["create-admin", "--email", "not an email", "--password", "long-enough-password"])
    assert result.exit_code == 2
    assert "not an email address" in result.output
    assert not empty_env.exists()


def test_create_admin_prompts_until_the_password_is_long_enough(data_env: Path) -> None:
    typed = "short\nshort\nlong-enough-password\nlong-enough-password\n"
    result = runner.invoke(app, ["create-admin", "--email", "ops@example.com"], input=typed)
    assert result.exit_code == 0, result.output
    assert "Refused: the password must be at least 12 characters" in result.output
    assert "created admin ops@example.com" in result.output
    assert "long-enough-password" not in result.output

    again = runner.invoke(app, ["create-admin", "--email", "ops@example.com", "--password", "another-password-2"])
    assert again.exit_code == 1
    assert "exists already" in again.output


def test_create_admin_password_confirmation_must_match(data_env: Path) -> None:
    typed = "long-enough-password\ndifferent-password\nlong-enough-password\nlong-enough-password\n"
    result = runner.invoke(app, ["create-admin", "--email", "ops2@example.com"], input=typed)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output


def test_up_shows_a_generated_admin_password_even_when_the_services_fail_to_start(
    shared_server: EmbeddedPostgres, data_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUNYUN_PORT_BASE", str(free_port_base()))

    async def services_never_ready(self: Supervisor, banner: Any) -> int:
        return 1  # as when a child dies during start-up: no banner

    monkeypatch.setattr(Supervisor, "run", services_never_ready)
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 1, result.output
    assert "did not start, but the admin was created" in result.output
    password = next(line.split()[1] for line in result.output.splitlines() if line.strip().startswith("password"))
    stored = asyncio.run(
        _fetch(
            shared_server,
            "qunyun_gateway",
            "SELECT password_hash FROM staff_accounts WHERE email = 'admin@qunyun.local'",
        )
    )
    assert asyncio.run(verify_password(stored[0], password))


def test_a_command_starts_its_own_server_and_the_data_survives_a_restart(empty_env: Path) -> None:
    pgdata = empty_env / "postgres"
    first = runner.invoke(app, ["create-admin", "--email", "ops@example.com", "--password", "long-enough-password"])
    assert first.exit_code == 0, first.output
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    # Nobody else was using it: the command stopped the server it started, cleanly.
    assert postgres_processes(pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()

    # A second command starts the server again on the same files: the admin is still there.
    again = runner.invoke(app, ["create-admin", "--email", "ops@example.com", "--password", "another-password-2"])
    assert again.exit_code == 1
    assert "exists already" in again.output
    assert postgres_processes(pgdata) == []

    # Only the starter owns (and stops) the server; `stop` is idempotent.
    owner, other = EmbeddedPostgres(pgdata), EmbeddedPostgres(pgdata)
    owner.start()
    other.start()
    assert (owner.owned, other.owned) == (True, False)
    assert other.pid == owner.pid
    pids = postgres_processes(pgdata)
    other.stop()
    assert other.pid is None
    assert all(is_alive(pid) for pid in pids)
    owner.stop()
    owner.stop()
    assert owner.pid is None
    assert wait_until_gone(pids) == []


def test_a_data_dir_of_another_major_version_is_refused(empty_env: Path) -> None:
    pgdata = empty_env / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"{pgdata} holds a PostgreSQL 16 database, and Qunyun runs PostgreSQL 18" in message
    assert "pg_dump" in message
    assert f"move {pgdata} aside" in message
    assert "QUNYUN_DATABASE_URL" in message
    assert sorted(path.name for path in pgdata.iterdir()) == ["PG_VERSION"]  # nothing touched
    assert postgres_processes(pgdata) == []


def test_a_database_url_means_no_embedded_server(empty_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = pg_url(f"qunyun_cli_{secrets.token_hex(4)}_{{service}}")
    monkeypatch.setenv("QUNYUN_DATABASE_URL", template)
    try:
        result = runner.invoke(app, ["migrate", "members"])
        assert result.exit_code == 0, result.output
        assert "members: created database" in result.output
    finally:
        asyncio.run(drop_database(template.format(service="members")))
    assert not empty_env.exists()  # no embedded server, not even its directory


def test_production_needs_a_database_url(empty_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_ENV", "production")
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"QUNYUN_{name.upper()}", value)
    result = runner.invoke(app, ["migrate", "content"])
    assert result.exit_code == 1
    assert "QUNYUN_ENV=production needs a database URL for content" in result.output
    assert not empty_env.exists()


SECRETS: dict[str, Any] = {
    "internal_signing_key": "a-real-internal-signing-key-0123456789abcdef",
    "jwt_signing_key": "a-real-jwt-signing-key-0123456789abcdef0123",
    "encryption_key": "cmVhbC1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg5YWI=",
    "blind_index_key": "a-real-blind-index-key-0123456789abcdef",
}


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="production")
    message = str(refused.value)
    for name in SECRETS:
        assert f"QUNYUN_{name.upper()}" in message


@pytest.mark.parametrize("kept", list(SECRETS))
def test_production_refuses_any_one_development_secret(kept: str) -> None:
    values = {name: value for name, value in SECRETS.items() if name != kept}
    with pytest.raises(ValidationError, match=f"QUNYUN_{kept.upper()}"):
        Settings(env="production", **values)


def test_production_starts_with_real_secrets() -> None:
    settings = Settings(env="production", **SECRETS)
    assert settings.jwt_signing_key.get_secret_value() == SECRETS["jwt_signing_key"]


@pytest.mark.parametrize("env", ["development", "test"])
def test_development_and_test_accept_the_defaults(env: str) -> None:
    assert Settings(env=env).env == env  # type: ignore[arg-type]
