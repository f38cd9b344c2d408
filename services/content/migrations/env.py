"""Alembic environment of the content service (own version table: alembic_version_content)."""

from services.common.migrations import run_migrations
from services.content.models_registry import metadata

run_migrations(metadata)
