"""Erasure confirmations: each service that holds member data says when it finished erasing.

Members erases the profile and emits `member.erased`; content, rewards and feedback apply it
and, in the same transaction, emit their own `<service>.member_erased`. The gateway records
every confirmation (it subscribes to every event), so `GET /v1/members/{id}/erasure` can show
an operator, service by service, that the erasure is complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType

from pydantic import Field

from services.common.contracts.base import EventModel, UtcDatetime, with_example
from services.common.contracts.members import MEMBER_ID

_EXAMPLE = {"member_id": MEMBER_ID, "erased_at": "2026-12-01T10:15:02Z"}


class MemberErasureConfirmed(EventModel):
    """A service finished erasing a member (abstract: each service has its own type)."""

    member_id: uuid.UUID
    erased_at: UtcDatetime = Field(description="When this service finished removing the member's personal data")


class ContentMemberErased(MemberErasureConfirmed):
    """Content erased a member: votes made anonymous, contact permits, budget and copies deleted."""

    event_type = "content.member_erased"
    model_config = with_example(**_EXAMPLE)


class RewardsMemberErased(MemberErasureConfirmed):
    """Rewards erased a member: account closed, off the leaderboards, free text removed."""

    event_type = "rewards.member_erased"
    model_config = with_example(**_EXAMPLE)


class FeedbackMemberErased(MemberErasureConfirmed):
    """Feedback erased a member: tickets, comments and suggestions pseudonymized, texts removed."""

    event_type = "feedback.member_erased"
    model_config = with_example(**_EXAMPLE)


# Who confirms what: the services that must confirm an erasure, by the type they confirm with.
ERASURE_CONFIRMATIONS: Mapping[str, type[MemberErasureConfirmed]] = MappingProxyType(
    {"content": ContentMemberErased, "rewards": RewardsMemberErased, "feedback": FeedbackMemberErased}
)
