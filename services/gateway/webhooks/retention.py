"""How long the webhook log is kept (the gateway's housekeeping job purges older rows).

After `QUNYUN_WEBHOOK_RETENTION_DAYS`: attempts (the per-call log) go, and so does every
message whose deliveries are all finished (succeeded or failed), with those deliveries
(the database cascades). A message still pending for some endpoint (retrying, or waiting
for a disabled endpoint to come back) is kept, whatever its age.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from services.common.jobs import Purge, older_than
from services.common.settings import Settings
from services.gateway.webhooks.models import PENDING, SENDING, attempts, deliveries, messages


def webhook_purges(settings: Settings) -> list[Purge]:
    keep_for = timedelta(days=settings.webhook_retention_days)
    unfinished = (
        sa.select(deliveries.c.id)
        .where(deliveries.c.message_id == messages.c.id, deliveries.c.status.in_((PENDING, SENDING)))
        .exists()
    )
    return [
        Purge("webhook_attempts", older_than(attempts, attempts.c.attempted_at), keep_for),
        Purge("webhook_messages", older_than(messages, messages.c.created_at, where=[~unfinished]), keep_for),
    ]
