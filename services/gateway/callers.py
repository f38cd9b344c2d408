"""Who is calling the gateway, resolved once per request.

The resolver is looked up on `app.state.identify_caller` (by default the real
`services.gateway.auth.identify.identify_caller`). That is the one seam between the edge
(rate limits, proxy) and authentication: tests install a resolver of their own there
instead of minting credentials, and nothing else in the edge knows how callers prove who
they are. The answer (an Identity, None for anonymous, or the Unauthorized raised for
bad credentials) is kept in the request scope, so the rate limiter, the proxy and the
gateway's own routes never identify a caller twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from services.common.identity import Identity
from services.common.problems import Unauthorized

CallerResolver = Callable[[Request], Awaitable[Identity | None]]

_IDENTITY = "gateway_identity"
_ERROR = "gateway_identity_error"


async def resolve_caller(request: Request) -> Identity | None:
    """The caller of this request (None if anonymous); raises Unauthorized for bad credentials."""
    state = request.scope.setdefault("state", {})
    if _ERROR in state:
        raise state[_ERROR]
    if _IDENTITY in state:
        return state[_IDENTITY]  # type: ignore[no-any-return]
    resolver: CallerResolver = request.app.state.identify_caller
    try:
        identity = await resolver(request)
    except Unauthorized as exc:
        state[_ERROR] = exc
        raise
    state[_IDENTITY] = identity
    return identity
