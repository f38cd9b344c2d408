"""Imports every table module of the content service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.content.db import metadata

__all__ = ["metadata"]
