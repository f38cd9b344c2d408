"""Imports every table module of the feedback service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.feedback.db import metadata

__all__ = ["metadata"]
