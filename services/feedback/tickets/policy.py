"""Who may do what with tickets: one place, so no route forgets a check.

Agents (and admins) act on every ticket; a partner key with `tickets:write` files tickets
for members and reads them like an agent. A member sees and comments on their own tickets
only: anyone else's is a 404, never a 403, so nothing leaks.
"""

from __future__ import annotations

import uuid

from services.common.identity import Identity
from services.common.problems import Forbidden, Unprocessable
from services.feedback.tickets.errors import TicketNotFound

TICKETS_SCOPE = "tickets:write"


def is_agent(caller: Identity) -> bool:
    return caller.has_role("agent") or caller.has_scope(TICKETS_SCOPE)


def ensure_can_see(caller: Identity, owner_id: uuid.UUID) -> None:
    if is_agent(caller):
        return
    if caller.kind == "member":
        if caller.member_id != owner_id:
            raise TicketNotFound("No such ticket.")
        return
    raise Forbidden("Your role does not allow this.")


def ensure_agent(caller: Identity, owner_id: uuid.UUID | None = None) -> None:
    """Agents only; a member gets a 404 for someone else's ticket, a 403 for their own."""
    if is_agent(caller):
        return
    if owner_id is not None:
        ensure_can_see(caller, owner_id)
    raise Forbidden("Only agents may do this.")


def owner_for_new_ticket(caller: Identity, member_id: uuid.UUID | None) -> uuid.UUID:
    """The member a new ticket belongs to: the member themself, or the one an agent names."""
    if caller.kind == "member" and caller.member_id is not None:
        if member_id is not None and member_id != caller.member_id:
            raise Forbidden("A member files tickets for themself only.")
        return caller.member_id
    if not is_agent(caller):
        raise Forbidden("Your role does not allow this.")
    if member_id is None:
        raise Unprocessable(
            "An agent filing a ticket names the member it is for.",
            errors=[{"loc": ["body", "member_id"], "msg": "required when an agent files a ticket"}],
        )
    return member_id


def author_of(caller: Identity) -> tuple[str, str]:
    """(author_kind, author_id) of a comment by this caller."""
    if caller.kind == "member" and caller.member_id is not None:
        return "member", str(caller.member_id)
    return "agent", caller.id
