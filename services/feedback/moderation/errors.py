"""Moderation errors (rendered as RFC 9457 problems by the kit's handler)."""

from services.common.problems import Conflict, Forbidden, NotFound, Unprocessable


class NotInCommunity(Forbidden):
    slug, title = "not-a-community-member", "Not a member of this community"


class ReportNotFound(NotFound):
    slug, title = "report-not-found", "Report not found"


class SanctionNotFound(NotFound):
    slug, title = "sanction-not-found", "Sanction not found"


class ReportAlreadyResolved(Conflict):
    slug, title = "report-already-resolved", "Report already resolved"


class SanctionNotActive(Conflict):
    slug, title = "sanction-not-active", "Sanction not active"


class UnknownRule(Unprocessable):
    """A rule code the community's rules do not define."""

    def __init__(self, code: str, loc: str = "rule_code") -> None:
        super().__init__(
            f"The community has no rule {code!r}.",
            errors=[{"loc": ["body", loc], "msg": f"not one of the community's rule codes: {code}"}],
        )


def invalid(field: str, message: str, detail: str | None = None) -> Unprocessable:
    """A 422 naming the body field at fault."""
    return Unprocessable(detail or message, errors=[{"loc": ["body", field], "msg": message}])
