"""Alembic environment of the gateway service (own version table: alembic_version_gateway)."""

from services.common.migrations import run_migrations
from services.gateway.models_registry import metadata

run_migrations(metadata)
