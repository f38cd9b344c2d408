"""Alembic environment of the members service (own version table: alembic_version_members)."""

from services.common.migrations import run_migrations
from services.members.models_registry import metadata

run_migrations(metadata)
