"""Settings: unsafe defaults refused in production, formats checked at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url

from services.common.settings import SERVICES, Settings

SAFE: dict[str, Any] = {
    "internal_signing_key": SecretStr("prod-internal-" + "x" * 40),
    "jwt_signing_key": SecretStr("prod-jwt-" + "y" * 40),
    "encryption_key": SecretStr("cHJvZC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0wMDA="),
    "blind_index_key": SecretStr("prod-blind-" + "z" * 40),
}
ENV_NAMES = ("QUNYUN_INTERNAL_SIGNING_KEY", "QUNYUN_JWT_SIGNING_KEY", "QUNYUN_ENCRYPTION_KEY", "QUNYUN_BLIND_INDEX_KEY")


def test_production_refuses_every_development_default() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="production")
    message = str(caught.value)
    for name in ENV_NAMES:
        assert name in message


@pytest.mark.parametrize("left_default", sorted(SAFE))
def test_production_refuses_even_one_development_default(left_default: str) -> None:
    values = {k: v for k, v in SAFE.items() if k != left_default}
    with pytest.raises(ValidationError, match=f"QUNYUN_{left_default.upper()}"):
        Settings(env="production", **values)


def test_production_starts_with_real_secrets() -> None:
    settings = Settings(env="production", **SAFE)
    assert settings.env == "production"


@pytest.mark.parametrize("env", ["development", "test"])
def test_development_and_test_accept_the_defaults(env: str) -> None:
    assert Settings(env=env).env == env  # type: ignore[arg-type]


def test_production_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_ENV", "production")
    with pytest.raises(ValidationError):
        Settings()
    for name, value in zip(ENV_NAMES, SAFE.values(), strict=True):
        monkeypatch.setenv(name, value.get_secret_value())
    assert Settings().env == "production"


@pytest.mark.parametrize(
    ("text", "parts"),
    [("600/minute", (600, 60)), (" 10 / second ", (10, 1)), ("5000/hour", (5000, 3600)), ("1/day", (1, 86400))],
)
def test_rate_limits_parse(text: str, parts: tuple[int, int]) -> None:
    assert Settings(rate_limit=text).rate_limit_parts == parts


@pytest.mark.parametrize("text", ["600 per minute", "600/min", "/minute", "-5/minute", "6.5/minute", ""])
def test_bad_rate_limits_fail_at_start_up(text: str) -> None:
    with pytest.raises(ValidationError, match="QUNYUN_RATE_LIMIT"):
        Settings(rate_limit=text)


def test_rate_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_RATE_LIMIT", "42/second")
    assert Settings().rate_limit_parts == (42, 1)


@pytest.mark.parametrize(
    ("text", "delays"),
    [
        ("5,300,1800,7200,18000,36000,36000", (5, 300, 1800, 7200, 18000, 36000, 36000)),
        (" 1, 2 ,3 ", (1, 2, 3)),
        ("0", (0,)),
    ],
)
def test_retry_schedules_parse(text: str, delays: tuple[int, ...]) -> None:
    assert Settings(webhook_retry_schedule=text).webhook_retry_delays == delays


def test_the_default_retry_schedule_is_standard_webhooks() -> None:
    assert Settings().webhook_retry_delays == (5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize("text", ["5,soon", "1.5,2", "-1,5"])
def test_bad_retry_schedules_fail_at_start_up(text: str) -> None:
    with pytest.raises(ValidationError, match="QUNYUN_WEBHOOK_RETRY_SCHEDULE"):
        Settings(webhook_retry_schedule=text)


def test_urls_ports_and_database_urls() -> None:
    settings = Settings(
        port_base=9000,
        data_dir="/data",  # type: ignore[arg-type]
        rewards_database_url="postgresql+asyncpg://db/rewards",
        feedback_url="http://feedback.internal:80/",
    )
    assert settings.database_url_for("members") == "postgresql+asyncpg://postgres@/qunyun_members?host=/data/postgres"
    assert settings.database_url_for("rewards") == "postgresql+asyncpg://db/rewards"
    assert settings.port_for("gateway") == 9000
    assert settings.port_for("feedback") == 9004
    assert settings.url_for("content") == "http://127.0.0.1:9002"
    assert settings.url_for("feedback") == "http://feedback.internal:80"


def test_without_urls_every_service_lives_on_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir="var")  # type: ignore[arg-type]
    assert settings.uses_embedded_postgres
    assert settings.embedded_postgres_dir == tmp_path / "var" / "postgres"  # absolute: the same from any cwd
    for service in SERVICES:
        url = make_url(settings.database_url_for(service))
        assert (url.database, url.query["host"]) == (f"qunyun_{service}", str(tmp_path / "var" / "postgres"))
    assert settings.embedded_postgres().server_url == f"postgresql+asyncpg://postgres@/?host={tmp_path}/var/postgres"


def test_a_url_template_replaces_the_embedded_server() -> None:
    settings = Settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/qunyun_{service}")
    assert not settings.uses_embedded_postgres
    assert settings.database_url_for("content") == "postgresql+asyncpg://postgres@127.0.0.1:5432/qunyun_content"


def test_the_embedded_server_is_needed_while_one_service_has_no_url() -> None:
    overrides: dict[str, Any] = {
        f"{service}_database_url": f"postgresql+asyncpg://db/{service}" for service in SERVICES
    }
    assert not Settings(**overrides).uses_embedded_postgres
    del overrides["feedback_database_url"]
    partly = Settings(**overrides)
    assert partly.uses_embedded_postgres
    assert partly.uses_embedded_postgres_for(["feedback"])
    assert not partly.uses_embedded_postgres_for(["members", "rewards"])
    assert make_url(partly.database_url_for("feedback")).database == "qunyun_feedback"


def test_a_long_data_dir_puts_the_socket_in_a_short_fixed_place() -> None:
    deep = Path("/srv") / ("d" * 120)
    first, second = Settings(data_dir=deep), Settings(data_dir=deep)
    host = make_url(first.database_url_for("gateway")).query["host"]
    assert isinstance(host, str)
    assert host.startswith("/tmp/qunyun-pg-")
    assert len(host) + len("/.s.PGSQL.5432") <= 107
    assert first.database_url_for("gateway") == second.database_url_for("gateway")  # known before any start
    assert Settings(data_dir=deep / "other").database_url_for("gateway") != first.database_url_for("gateway")


@pytest.mark.parametrize(
    "bad",
    [
        {"relay_max_attempts": 0},
        {"relay_retry_base_seconds": 0},
        {"outbox_retention_days": -1},
        {"maintenance_interval_seconds": 0},
        {"db_pool_timeout_seconds": 0},
    ],
)
def test_relay_and_housekeeping_settings_are_bounded(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
