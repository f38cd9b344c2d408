"""Imports every table module of the gateway service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.gateway.db import metadata
from services.gateway.webhooks import models as webhook_models

__all__ = ["metadata", "webhook_models"]
