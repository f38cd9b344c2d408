"""Rewards' housekeeping: per-day earning counters go after their retention, today's stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from services.common.db import utcnow
from services.rewards.earning.retention import DAILY
from tests.system import System


async def test_old_daily_earnings_are_purged(system: System) -> None:
    rewards = system.state("rewards")
    today = utcnow().date()
    keep_days = system.settings.daily_earnings_retention_days
    member, rule = uuid.uuid4(), uuid.uuid4()
    days = [today, today - timedelta(days=keep_days), today - timedelta(days=keep_days + 5)]
    async with rewards.db.session() as session:
        await session.execute(
            DAILY.insert(), [{"member_id": member, "rule_id": rule, "local_date": day, "points": 5} for day in days]
        )
        await session.commit()

    counts = await rewards.housekeeping.purge()

    assert counts["daily_earnings"] == 1
    async with rewards.db.session() as session:
        kept = set(await session.scalars(sa.select(DAILY.c.local_date)))
    assert kept == set(days[:2])
