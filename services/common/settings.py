"""Settings from `QUNYUN_*` environment variables, shared by every process.

One `Settings` object describes the whole deployment (all five services), so each
process can find its peers and its own database from the same environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.embedded_postgres import EmbeddedPostgres

ServiceName = Literal["gateway", "members", "content", "rewards", "feedback"]
SERVICES: tuple[ServiceName, ...] = ("gateway", "members", "content", "rewards", "feedback")
DOMAIN_SERVICES: tuple[ServiceName, ...] = ("members", "content", "rewards", "feedback")

# Development defaults: fine on a laptop, refused anywhere else (see _refuse_unsafe_defaults).
DEV_INTERNAL_KEY = "dev-internal-signing-key-change-me-0123456789"
DEV_JWT_KEY = "dev-jwt-signing-key-change-me-0123456789abcdef"
DEV_ENCRYPTION_KEY = "ZGV2LWVuY3J5cHRpb24ta2V5LWNoYW5nZS1tZS0wMDA="  # 32 bytes, base64
DEV_BLIND_INDEX_KEY = "dev-blind-index-key-change-me-0123456789"

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_WINDOW_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUNYUN_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port_base: int = 8000
    data_dir: Path = Path("var")
    # A URL template with `{service}`; unset: the embedded PostgreSQL under data_dir.
    database_url: str | None = None
    gateway_database_url: str | None = None
    members_database_url: str | None = None
    content_database_url: str | None = None
    rewards_database_url: str | None = None
    feedback_database_url: str | None = None
    # Connections stay open once made: overflow connections are closed as they come back, so
    # under steady load beyond the pool every few requests paid for a new connection.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    db_pool_timeout_seconds: float = Field(default=30, gt=0)
    # Plain asyncpg connections for the hottest reads (db.PreparedRead), opened on first use;
    # as many again, apart, for hot single-statement writes (db.PreparedAtomic), if a service has any.
    db_read_pool_size: int = Field(default=4, ge=1)

    # Where the services are; default derived from host and port_base.
    gateway_url: str | None = None
    members_url: str | None = None
    content_url: str | None = None
    rewards_url: str | None = None
    feedback_url: str | None = None

    internal_signing_key: SecretStr = SecretStr(DEV_INTERNAL_KEY)
    internal_token_ttl_seconds: int = 60
    jwt_signing_key: SecretStr = SecretStr(DEV_JWT_KEY)
    jwt_issuer: str = "https://qunyun.dev"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 86400
    member_token_ttl_seconds: int = 3600
    # A refresh token presented again this soon after it was spent (two tabs refreshing at
    # once) gets the successor already issued for it; later, reuse revokes the family.
    refresh_reuse_grace_seconds: float = Field(default=10, ge=0)
    encryption_key: SecretStr = SecretStr(DEV_ENCRYPTION_KEY)
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    admin_email: str | None = None
    admin_password: SecretStr | None = None

    rate_limit: str = "600/minute"
    # Gateway replicas share rate-limit counters here (redis://, rediss://, unix://); unset:
    # each process counts on its own. Keys start with the prefix (several deployments, one Redis).
    redis_url: SecretStr | None = None
    redis_key_prefix: str = "qunyun:"
    upstream_timeout_seconds: float = 10.0
    upstream_connect_timeout_seconds: float = 2.0
    # Composed views (overview, dashboard): each part's budget; a slower part is left out.
    compose_part_timeout_seconds: float = Field(default=1.0, gt=0)
    # How long a complete dashboard is reused per community and window (0: never).
    dashboard_cache_seconds: float = Field(default=30, ge=0)

    relay_enabled: bool = True
    relay_interval_ms: int = 500
    relay_batch_size: int = 500
    scheduler_interval_ms: int = 1000
    # A subscriber that fails on one event (its handler raised) gets it again with backoff;
    # after this many attempts the event is parked (kept, visible, replayable) so it no
    # longer holds anything up.
    relay_max_attempts: int = Field(default=8, ge=1)
    relay_retry_base_seconds: float = Field(default=1.0, gt=0)
    relay_retry_max_seconds: float = Field(default=300.0, gt=0)
    relay_timeout_seconds: float = Field(default=30.0, gt=0)
    # A relay's claim on a batch: rows not recorded by then (the relay died) are claimed again.
    relay_lease_seconds: float = Field(default=120.0, gt=0)
    # Housekeeping (one claimed job per service and interval): rows older than these go.
    outbox_retention_days: float = Field(default=7, gt=0)
    inbox_retention_days: float = Field(default=30, gt=0)
    webhook_retention_days: float = Field(default=30, gt=0)  # finished webhook messages and attempt logs
    daily_earnings_retention_days: float = Field(default=90, gt=0)  # rewards' per-day earning counters
    maintenance_interval_seconds: float = Field(default=3600, gt=0)

    webhook_allow_private: bool = False
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: float = 15.0
    webhook_secret_grace_seconds: int = 86400  # old secret keeps signing this long after a rotation
    webhook_disable_after_seconds: int = 5 * 86400  # an endpoint failing this long without a success is disabled
    webhook_lease_seconds: float = 60.0  # a claimed delivery not recorded by then is reclaimed (crash)
    webhook_max_in_flight_per_endpoint: int = 4
    webhook_max_in_flight: int = 256
    webhook_claim_batch_size: int = 200

    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.env == "development" or self.env == "test":
            return self
        unsafe = [
            name
            for name, value, default in (
                ("QUNYUN_INTERNAL_SIGNING_KEY", self.internal_signing_key, DEV_INTERNAL_KEY),
                ("QUNYUN_JWT_SIGNING_KEY", self.jwt_signing_key, DEV_JWT_KEY),
                ("QUNYUN_ENCRYPTION_KEY", self.encryption_key, DEV_ENCRYPTION_KEY),
                ("QUNYUN_BLIND_INDEX_KEY", self.blind_index_key, DEV_BLIND_INDEX_KEY),
            )
            if value.get_secret_value() == default
        ]
        if unsafe:
            raise ValueError(f"unsafe development defaults outside development: set {', '.join(unsafe)}")
        return self

    @model_validator(mode="after")
    def _check_formats(self) -> Settings:
        self.rate_limit_parts  # noqa: B018 - parse early so a typo fails at start-up
        self.webhook_retry_delays  # noqa: B018
        if self.relay_lease_seconds <= self.relay_timeout_seconds:
            raise ValueError("QUNYUN_RELAY_LEASE_SECONDS must exceed QUNYUN_RELAY_TIMEOUT_SECONDS")
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("QUNYUN_WEBHOOK_LEASE_SECONDS must exceed QUNYUN_WEBHOOK_TIMEOUT_SECONDS")
        return self

    def database_url_for(self, service: ServiceName) -> str:
        """The service's own URL, else the template's, else its database on the embedded server."""
        template = self._database_template_for(service)
        if template is None:
            template = self.embedded_postgres().database_url("qunyun_{service}")
        return template.format(service=service)

    def _database_template_for(self, service: ServiceName) -> str | None:
        override: str | None = getattr(self, f"{service}_database_url")
        return override or self.database_url

    def has_database_url(self, service: ServiceName) -> bool:
        """False when the service's database is on the embedded server (no URL configured)."""
        return self._database_template_for(service) is not None

    def uses_embedded_postgres_for(self, services: Iterable[ServiceName]) -> bool:
        """True when one of these services has no database URL: it lives on the embedded server."""
        return not all(self.has_database_url(service) for service in services)

    @property
    def uses_embedded_postgres(self) -> bool:
        """True when `qunyun up` must run the embedded server (some service has no URL)."""
        return self.uses_embedded_postgres_for(SERVICES)

    @property
    def embedded_postgres_dir(self) -> Path:
        """The embedded server's cluster directory, absolute: `<data dir>/postgres`."""
        return (self.data_dir / "postgres").absolute()

    def embedded_postgres(self) -> EmbeddedPostgres:
        """A handle on the embedded server (not started: call `start()`)."""
        return EmbeddedPostgres(self.embedded_postgres_dir)

    def port_for(self, service: ServiceName) -> int:
        return self.port_base + SERVICES.index(service)

    def url_for(self, service: ServiceName) -> str:
        explicit: str | None = getattr(self, f"{service}_url")
        return (explicit or f"http://{self.host}:{self.port_for(service)}").rstrip("/")

    @cached_property
    def rate_limit_parts(self) -> tuple[int, int]:
        """`600/minute` -> (600, 60): requests allowed per window of seconds."""
        match = _RATE.match(self.rate_limit)
        if not match:
            raise ValueError(f"QUNYUN_RATE_LIMIT must look like '600/minute', got {self.rate_limit!r}")
        return int(match.group(1)), _WINDOW_SECONDS[match.group(2)]

    @cached_property
    def webhook_retry_delays(self) -> tuple[int, ...]:
        try:
            delays = tuple(int(part) for part in self.webhook_retry_schedule.split(",") if part.strip())
        except ValueError as exc:
            raise ValueError("QUNYUN_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds") from exc
        if any(d < 0 for d in delays):
            raise ValueError("QUNYUN_WEBHOOK_RETRY_SCHEDULE must not hold negative delays")
        return delays


def get_settings() -> Settings:
    return Settings()
