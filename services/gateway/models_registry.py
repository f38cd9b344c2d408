"""Imports every table module of the gateway service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.gateway.auth import models as auth_models
from services.gateway.compose import models as compose_models
from services.gateway.db import metadata
from services.gateway.webhooks import models as webhook_models

__all__ = ["auth_models", "compose_models", "metadata", "webhook_models"]
