"""Imports every table module of the members service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.members.db import metadata

__all__ = ["metadata"]
