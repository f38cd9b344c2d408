"""The `qunyun` console script: argument checks, migrate, create-admin, and safe settings."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from services.cli import app
from services.common.migrations import version_table
from services.common.settings import SERVICES, Settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QUNYUN_* setting from the caller's shell leaks into these tests."""
    for name in [key for key in os.environ if key.startswith("QUNYUN_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QUNYUN_DATA_DIR pointing at an empty SQLite data dir."""
    monkeypatch.setenv("QUNYUN_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_creates_every_database(data_env: Path) -> None:
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    for name in SERVICES:
        assert f"{name}: migrated" in result.output
        assert version_table(name) in _tables(data_env / f"{name}.db")


def test_migrate_one_service(data_env: Path) -> None:
    result = runner.invoke(app, ["migrate", "rewards"])
    assert result.exit_code == 0, result.output
    assert [path.name for path in data_env.iterdir() if path.suffix == ".db"] == ["rewards.db"]


@pytest.mark.parametrize("command", [["migrate", "billing"], ["serve", "billing"]])
def test_unknown_service_is_a_usage_error(data_env: Path, command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "unknown service 'billing'" in result.output
    assert not data_env.exists()


def test_create_admin_refuses_a_short_password(data_env: Path) -> None:
    result = runner.invoke(app, ["create-admin", "--email", "ops@example.com", "--password", "short-pass1"])
    assert result.exit_code == 2
    assert "at least 12 characters" in result.output
    assert not data_env.exists()


def test_create_admin_refuses_a_bad_email(data_env: Path) -> None:
    result = runner.invoke(app, ["create-admin", "--email", "not an email", "--password", "long-enough-password"])
    assert result.exit_code == 2
    assert "not an email address" in result.output
    assert not data_env.exists()


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
