"""What staff roles and partner scopes exist."""

from __future__ import annotations

from services.common.identity import ROLES

STAFF_ROLES: tuple[str, ...] = tuple(role for role in ROLES if role != "member")

# Partner API key scopes. `read` grants read access wherever a service accepts it.
KNOWN_SCOPES: tuple[str, ...] = (
    "read",
    "members:read",
    "members:write",
    "members:token",
    "events:write",
    "content:read",
    "content:write",
    "contact:write",
    "rewards:read",
    "rewards:write",
    "tickets:read",
    "tickets:write",
    "moderation:write",
)
