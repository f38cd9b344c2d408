"""Imports every table module of the rewards service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.rewards.db import metadata

__all__ = ["metadata"]
