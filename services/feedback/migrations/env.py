"""Alembic environment of the feedback service (own version table: alembic_version_feedback)."""

from services.common.migrations import run_migrations
from services.feedback.models_registry import metadata

run_migrations(metadata)
