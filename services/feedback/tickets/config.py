"""What filing a ticket reads besides the ticket: the assignment setting, the SLA policies and
the community's business hours, cached per process under the support config version.

Every write to `support_settings`, `sla_policies` or `business_hours` (any replica, any
path, a TRUNCATE too) gives `support_config_version` a new number from its own sequence
(statement triggers, migration 0006). A process keeps what it read with the version it read
it at, and the ticket INSERT runs only if that is still the version
(`repository.filing_statement`): a filing never uses a policy changed before its statement,
and costs no read while nothing changed. When the version moved, the filing reads them
again in its transaction and inserts with what it read, as it would with no cache.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.sla.calendar import Calendar
from services.feedback.sla.schemas import SlaPolicyItem
from services.feedback.sla.service import DEFAULT_POLICIES

# Communities whose hours one process keeps (each entry is a few hundred bytes).
MAX_COMMUNITIES = 10_000

# One statement, one snapshot: the version, the assignment setting, every stored policy and
# one community's hours ($1; NULL: no community).
_LOAD = sa.text(
    "SELECT COALESCE((SELECT version FROM support_config_version WHERE id = 1), 0) AS version,"
    " (SELECT assignment FROM support_settings WHERE id = 1) AS assignment,"
    " (SELECT array_agg(priority ORDER BY priority) FROM sla_policies) AS priorities,"
    " (SELECT array_agg(first_response_minutes ORDER BY priority) FROM sla_policies) AS first_minutes,"
    " (SELECT array_agg(resolution_minutes ORDER BY priority) FROM sla_policies) AS resolution_minutes,"
    " (SELECT array_agg(business_hours_only ORDER BY priority) FROM sla_policies) AS hours_only,"
    ' h.timezone, h.days, h.start, h."end"'
    " FROM (SELECT 1) AS one LEFT JOIN business_hours AS h ON h.community_id = :community_id"
)


@dataclass
class SupportConfig:
    """The settings and policies as of `version`, and the calendars of the communities read since."""

    version: int
    assignment: str
    policies: dict[str, SlaPolicyItem]
    calendars: dict[uuid.UUID, Calendar | None] = field(default_factory=dict)

    def policy(self, priority: str) -> SlaPolicyItem:
        return self.policies[priority]


def _config_of(row: Any) -> tuple[SupportConfig, Calendar | None]:
    policies = {
        priority: SlaPolicyItem(priority=priority, first_response_minutes=first, resolution_minutes=resolution)  # type: ignore[arg-type]
        for priority, (first, resolution) in DEFAULT_POLICIES.items()
    }
    stored = zip(
        row.priorities or (),
        row.first_minutes or (),
        row.resolution_minutes or (),
        row.hours_only or (),
        strict=True,
    )
    for priority, first, resolution, hours_only in stored:
        policies[priority] = SlaPolicyItem(
            priority=priority,
            first_response_minutes=first,
            resolution_minutes=resolution,
            business_hours_only=hours_only,
        )
    calendar = None
    if row.timezone is not None:
        calendar = Calendar(row.timezone, frozenset(row.days), row.start, row.end)
    return SupportConfig(row.version, row.assignment or "manual", policies), calendar


class SupportConfigCache:
    """The process's `SupportConfig`: read on first need, and again once its version is gone."""

    def __init__(self) -> None:
        self._config: SupportConfig | None = None

    def clear(self) -> None:
        self._config = None

    def cached(self, community_id: uuid.UUID | None) -> SupportConfig | None:
        """The cached config if it knows this community's calendar (no statement)."""
        config = self._config
        if config is None or (community_id is not None and community_id not in config.calendars):
            return None
        return config

    async def read(self, session: AsyncSession, community_id: uuid.UUID | None) -> SupportConfig:
        """The config as the session's transaction sees it now (one statement), kept for next time."""
        row = (await session.execute(_LOAD, {"community_id": community_id})).one()
        fresh, calendar = _config_of(row)
        kept = self._config
        if kept is not None and kept.version == fresh.version and len(kept.calendars) < MAX_COMMUNITIES:
            fresh.calendars = kept.calendars  # same version: the calendars read before still hold
        if community_id is not None:
            fresh.calendars[community_id] = calendar
        self._config = fresh
        return fresh

    def forget(self, version: int) -> None:
        """The version this config was read at is gone (a filing's INSERT found another)."""
        if self._config is not None and self._config.version == version:
            self._config = None
