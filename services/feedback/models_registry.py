"""Imports every table module of the feedback service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.feedback.db import metadata
from services.feedback.sla import models as sla_models
from services.feedback.suggestions import models as suggestion_models
from services.feedback.tickets import models as ticket_models

__all__ = ["metadata", "sla_models", "suggestion_models", "ticket_models"]
