"""Who may do what in moderation: one policy, so no route forgets a check.

Operators (and admins) write rules and the ladder and sanction directly; operators and
agents work the report queue and read anyone's standing. Members report for themselves,
read their community's rules, their own reports and their own standing; anyone else's is a
404. A partner key with `moderation:write` (the chat bot) reports on a member's behalf and
reads rules and standing, like the bot that enforces them must.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.common.identity import Identity, ensure_self_or, require
from services.common.problems import Forbidden
from services.feedback.moderation.errors import invalid

MODERATION_SCOPE = "moderation:write"


def is_moderator(caller: Identity) -> bool:
    """Operators and agents (and admins) work the queue and see every standing."""
    return caller.has_role("operator", "agent")


def is_operator(caller: Identity) -> bool:
    return caller.has_role("operator")


def is_bot(caller: Identity) -> bool:
    return caller.has_scope(MODERATION_SCOPE)


Moderator = Annotated[Identity, Depends(require("operator", "agent"))]
Operator = Annotated[Identity, Depends(require("operator"))]


def ensure_can_read_standing(caller: Identity, member_id: uuid.UUID) -> None:
    """The member themself (anyone else's: 404), moderators, and bots with the moderation scope."""
    ensure_self_or(caller, member_id, "operator", "agent", scopes=(MODERATION_SCOPE,))


def reads_rules_as_member(caller: Identity) -> uuid.UUID | None:
    """The member whose community membership decides whether they read the rules (None:
    staff and partners read every community's rules)."""
    if caller.kind == "member":
        return caller.member_id
    return None


@dataclass(frozen=True)
class Reporter:
    """Who files a report: `reporter_id` keys it (one filing per reporter and report);
    `member_id` is the reporting member (None for staff)."""

    reporter_id: str
    member_id: uuid.UUID | None


def reporter_for(caller: Identity, on_behalf_of: uuid.UUID | None) -> Reporter:
    if caller.kind == "member" and caller.member_id is not None:
        if on_behalf_of is not None and on_behalf_of != caller.member_id:
            raise Forbidden("A member reports for themself only.")
        return Reporter(f"member:{caller.member_id}", caller.member_id)
    if is_bot(caller):
        if on_behalf_of is None:
            raise invalid("reporter_member_id", "required when a partner reports for a member")
        return Reporter(f"member:{on_behalf_of}", on_behalf_of)
    if caller.kind == "staff" or caller.is_admin:
        if on_behalf_of is not None:
            raise invalid("reporter_member_id", "staff report in their own name")
        return Reporter(caller.key, None)
    raise Forbidden("Your role does not allow this.")
