"""Contracts of community moderation (the feedback service): reports and sanctions.

Feedback's moderation domain emits them (API.md). Sanctions are carried out by the partner's
bot in the chat group; rewards keeps each member's mutes and bans from `sanction_applied` /
`sanction_lifted` and earns nothing while one holds. A report's reporter is never named.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from services.common.contracts.base import EventModel, UtcDatetime, with_example
from services.common.contracts.members import COMMUNITY_ID, MEMBER_ID

SanctionAction = Literal["warn", "mute", "ban"]

REPORT_ID = "5d6e7f8a-9b0c-4d1e-8f2a-3b4c5d6e7f8b"
SANCTION_ID = "6e7f8a9b-0c1d-4e2f-9a3b-4c5d6e7f8a9c"


class ReportCreated(EventModel):
    """A member was reported for breaking a community rule."""

    event_type = "moderation.report_created"
    model_config = with_example(
        report_id=REPORT_ID,
        community_id=COMMUNITY_ID,
        reported_member_id=MEMBER_ID,
        rule_code="no-spam",
        created_at="2026-11-21T08:00:00Z",
    )

    report_id: uuid.UUID
    community_id: uuid.UUID
    reported_member_id: uuid.UUID
    rule_code: str | None
    created_at: UtcDatetime


class ReportResolved(EventModel):
    """A moderator dismissed or upheld a report (upholding adds a strike)."""

    event_type = "moderation.report_resolved"
    model_config = with_example(
        report_id=REPORT_ID,
        community_id=COMMUNITY_ID,
        reported_member_id=MEMBER_ID,
        decision="uphold",
        rule_code="no-spam",
        sanction_id=SANCTION_ID,
        resolved_at="2026-11-21T09:00:00Z",
    )

    report_id: uuid.UUID
    community_id: uuid.UUID
    reported_member_id: uuid.UUID
    decision: Literal["dismiss", "uphold"]
    rule_code: str | None
    sanction_id: uuid.UUID | None = Field(description="The sanction the ladder applied, if any")
    resolved_at: UtcDatetime


class SanctionApplied(EventModel):
    """A sanction was applied: the bot warns, mutes or bans the member in the group."""

    event_type = "moderation.sanction_applied"
    model_config = with_example(
        sanction_id=SANCTION_ID,
        member_id=MEMBER_ID,
        community_id=COMMUNITY_ID,
        action="mute",
        until="2026-11-22T09:00:00Z",
        rule_code="no-spam",
        applied_at="2026-11-21T09:00:00Z",
    )

    sanction_id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID
    action: SanctionAction
    until: UtcDatetime | None = Field(description="When it ends by itself; null for a warning or a permanent ban")
    rule_code: str
    applied_at: UtcDatetime = Field(description="When it took effect (activity from then on earns no points)")


class SanctionLifted(EventModel):
    """A sanction ended: it expired, an operator lifted it, or an appeal succeeded."""

    event_type = "moderation.sanction_lifted"
    model_config = with_example(
        sanction_id=SANCTION_ID,
        member_id=MEMBER_ID,
        community_id=COMMUNITY_ID,
        action="mute",
        reason="expired",
        lifted_at="2026-11-22T09:00:00Z",
    )

    sanction_id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID
    action: SanctionAction
    reason: Literal["expired", "lifted", "appeal"]
    lifted_at: UtcDatetime
