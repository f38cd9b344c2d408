"""RFC 9457 problem details: one error hierarchy, one renderer, for every process.

Raise `ProblemError` (or a domain subclass declared next to its domain); the handlers
installed by `install_problem_handlers` turn it, FastAPI's validation errors, Starlette's
HTTP errors and anything unhandled into `application/problem+json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

PROBLEM_BASE = "https://qunyun.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("qunyun.problems")


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem detail, as every error answer looks."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """An error that renders as a problem; subclass it with a fixed `slug` and `status`."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.status_code = status or self.status
        self.type_slug = slug or self.slug
        self.problem_title = title or self.title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid request"


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class GatewayTimeout(ProblemError):
    status, slug, title = 504, "upstream-timeout", "Upstream timed out"


_STATUS_SLUGS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    502: ("bad-gateway", "Bad gateway"),
    503: ("service-unavailable", "Service unavailable"),
    504: ("upstream-timeout", "Upstream timed out"),
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def problem_response(
    status: int,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    default_slug, default_title = _STATUS_SLUGS.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": problem_type(slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(
        content=json.dumps(body, default=str, separators=(",", ":")),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [part for part in err.get("loc", ()) if isinstance(part, str | int)]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid"))})
    return out


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json`, `application/problem+json`, ... (parameters such as charset allowed)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _route_takes_json_body(request: Request) -> bool:
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return body_field is not None and not isinstance(body_field.field_info, params.Form)


async def _problem_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status_code,
        exc.type_slug,
        exc.problem_title,
        exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    instance = request.url.path
    decode_error = next((e for e in raw if e.get("type") == "json_invalid"), None)
    if decode_error is not None:
        # Like Stripe and GitHub: a body that is not JSON at all is a 400, not field errors.
        reason = str((decode_error.get("ctx") or {}).get("error") or "invalid JSON")
        return problem_response(
            400,
            "malformed-json",
            "Malformed JSON",
            "The request body is not valid JSON.",
            instance=instance,
            errors=[{"loc": ["body"], "msg": reason}],
        )
    content_type = request.headers.get("content-type")
    body_errors = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in raw)
    sent_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if body_errors and sent_body and _route_takes_json_body(request) and not is_json_media_type(content_type):
        # FastAPI leaves a non-JSON body unparsed, which would surface as misleading field errors.
        return problem_response(
            415,
            detail=f"Send the body as JSON with Content-Type: application/json (got {content_type or 'none'}).",
            instance=instance,
        )
    return problem_response(
        422,
        "validation-error",
        "Invalid request",
        "The request has invalid fields.",
        instance=instance,
        errors=_field_errors(raw),
    )


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _STATUS_SLUGS.get(exc.status_code, ("", ""))[1] or detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette names only the first route matching the path; RFC 9110 wants them all.
        allowed = _allowed_methods(request)
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem_response(exc.status_code, detail=detail, instance=request.url.path, headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (asks the router, so included routers count)."""
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


# SQLSTATEs that say "the database cannot take this now", whatever the request: connection
# exceptions (class 08), insufficient resources (class 53, e.g. 53300 too many clients)
# and the server shutting down or starting up (57P01-57P03).
_UNAVAILABLE_STATE_CLASSES = ("08", "53")
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03"})


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot serve right now (down, refusing new
    connections, saturated, the pool exhausted), not that this request is wrong: the
    answer is 503 with Retry-After, which clients and relays retry, never a 500."""
    if isinstance(error, OperationalError | PoolTimeout | ConnectionError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None)
    return isinstance(state, str) and (state[:2] in _UNAVAILABLE_STATE_CLASSES or state in _UNAVAILABLE_STATES)


def database_unavailable_response(instance: str | None = None) -> Response:
    return problem_response(
        503,
        "service-unavailable",
        "Service unavailable",
        "The database cannot take this request now; retry shortly.",
        instance=instance,
        headers={"Retry-After": "1"},
    )


def internal_error_response(instance: str | None = None) -> Response:
    """The 500 answer: a problem with no trace of what went wrong inside (that goes to the log)."""
    return problem_response(500, detail="An unexpected error occurred.", instance=instance)


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    # Normally RequestContextMiddleware answers first (with the request id); this is the
    # fallback for apps without it. Log the trace for operators, never show it to the caller.
    log.error("unhandled_error", route=route_template(request.scope), exc_info=exc)
    return internal_error_response(request.url.path)


# SQLSTATEs of text the database cannot store: Postgres refuses NUL characters (`\u0000`)
# in text (22021) and in jsonb (22P05), wherever a request put them.
_UNSTORABLE_TEXT_STATES = frozenset({"22021", "22P05"})


async def _database_error_handler(request: Request, exc: Exception) -> Response:
    """Text the database cannot store is the caller's mistake (422, and the request's
    transaction is rolled back); a database that cannot serve now is a 503 (retry); any
    other database error stays a 500."""
    if database_unavailable(exc):
        log.warning("database_unavailable", route=route_template(request.scope), error=str(exc)[:300])
        return database_unavailable_response(request.url.path)
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) not in _UNSTORABLE_TEXT_STATES:
        raise exc
    return problem_response(
        422,
        "invalid-text",
        "Invalid text",
        "Text must not contain NUL (\\u0000) characters.",
        instance=request.url.path,
    )


def route_template(scope: Any) -> str:
    """The matched route's path template (`/v1/members/{id}`), never the raw path: raw
    paths can carry personal data (`/by-external-id/...`) and explode metric labels."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    app.add_exception_handler(PoolTimeout, _database_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: declares its problem answers in the OpenAPI document."""
    return {
        status: {
            "model": Problem,
            "description": _STATUS_SLUGS.get(status, ("", "Error"))[1],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
