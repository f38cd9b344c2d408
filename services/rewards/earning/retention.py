"""How long earning's per-day counters are kept (the housekeeping job purges older ones).

A daily cap only reads the member's current local day, so old `daily_earnings` rows serve
nothing but curiosity; `QUNYUN_DAILY_EARNINGS_RETENTION_DAYS` bounds the table.
"""

from __future__ import annotations

from datetime import timedelta

from services.common.db import table_of
from services.common.jobs import Purge, older_than
from services.common.settings import Settings
from services.rewards.earning.models import DailyEarning

DAILY = table_of(DailyEarning)


def daily_earnings_purge(settings: Settings) -> Purge:
    # One more day than asked: a local day can start up to 14 h before the UTC one.
    keep_for = timedelta(days=settings.daily_earnings_retention_days + 1)
    return Purge("daily_earnings", older_than(DAILY, DAILY.c.local_date, by_day=True), keep_for)
