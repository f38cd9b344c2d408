"""Ticket errors (rendered as RFC 9457 problems by the kit's handler)."""

from services.common.problems import Conflict, NotFound


class TicketNotFound(NotFound):
    slug, title = "ticket-not-found", "Ticket not found"


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Invalid status transition"


class ReopenWindowPassed(Conflict):
    slug, title = "reopen-window-passed", "Too late to reopen"


class AlreadyRated(Conflict):
    slug, title = "already-rated", "Already rated"


class TicketNotResolved(Conflict):
    slug, title = "ticket-not-resolved", "Ticket not resolved"
