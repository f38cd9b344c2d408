"""Dependencies that authenticate and authorize callers of the gateway's own routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.common.identity import Identity
from services.common.problems import Forbidden, Unauthorized
from services.gateway.callers import resolve_caller

# Declared for the OpenAPI document only, under the same names the merged document uses for
# every service operation; the caller resolver reads the headers itself, so these never reject.
bearer_scheme = HTTPBearer(scheme_name="HTTPBearer", bearerFormat="JWT", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", scheme_name="APIKeyHeader", auto_error=False)


async def current_caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Identity:
    """The authenticated caller; 401 (with WWW-Authenticate) when there are no credentials."""
    identity = await resolve_caller(request)
    if identity is None:
        raise Unauthorized("Authentication required: send `Authorization: Bearer <token>` or `X-API-Key`.")
    return identity


GatewayCaller = Annotated[Identity, Depends(current_caller)]


def require_gateway(*roles: str, scopes: Iterable[str] = ()) -> Callable[[Identity], Awaitable[Identity]]:
    """Allow staff with any of `roles` (admin always) and partners with any of `scopes`; else 403."""
    scope_list = tuple(scopes)

    async def check(caller: GatewayCaller) -> Identity:
        if caller.has_role(*roles) or caller.has_scope(*scope_list):
            return caller
        raise Forbidden("Your role does not allow this.")

    return check


require_admin = require_gateway()
AdminCaller = Annotated[Identity, Depends(require_admin)]
