"""Imports every table module of the feedback service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.feedback.db import metadata
from services.feedback.moderation.membership import models as membership_models
from services.feedback.moderation.reports import models as report_models
from services.feedback.moderation.rules import models as rule_models
from services.feedback.moderation.sanctions import models as sanction_models
from services.feedback.sla import models as sla_models
from services.feedback.suggestions import models as suggestion_models
from services.feedback.tickets import models as ticket_models

__all__ = [
    "membership_models",
    "metadata",
    "report_models",
    "rule_models",
    "sanction_models",
    "sla_models",
    "suggestion_models",
    "ticket_models",
]
