"""Forwarding `/v1` requests to the service that owns the path template.

The proxy is the gateway router's fallback (`app.router.default`), so the gateway's own
routes always win. It is plain ASGI on the hot path: it reads the body (capped), keeps
only end-to-end headers the services understand, adds the internal token carrying the
caller's identity and the request id, sends the request with the process's one shared
HTTP client and streams the answer back. Failures become problems: an unreachable
service 503, a slow one 504 (never a hang), a broken answer 502.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

import aiohttp
import httpx
import structlog
from aiohttp import ClientTimeout, ConnectionTimeoutError, ServerTimeoutError
from fastapi.routing import iter_route_contexts
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.identity import INTERNAL_TOKEN_HEADER, InternalTokenCache
from services.common.problems import (
    GatewayTimeout,
    NotFound,
    ProblemError,
    ServiceUnavailable,
    Unauthorized,
    problem_response,
)
from services.common.settings import Settings
from services.gateway.callers import resolve_caller
from services.gateway.routing import PUBLIC_PREFIX, Route, RouteTable, RouteTableLoader

log = structlog.get_logger("qunyun.gateway.proxy")

MAX_BODY_BYTES = 5 * 1024 * 1024

# End-to-end request headers a service may need. Credentials (Authorization, X-API-Key,
# cookies) stop here: services trust only the internal token.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        b"accept",
        b"accept-language",
        b"content-type",
        b"content-language",
        b"idempotency-key",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"prefer",
        b"user-agent",
    }
)
# Hop-by-hop headers (RFC 9110 7.6.1) and those this process sets itself on the answer.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        b"x-request-id",
    }
)


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class MethodNotAllowed(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class BadGateway(ProblemError):
    status, slug, title = 502, "bad-gateway", "Bad gateway"


def upstream_problem(service: str, exc: Exception, timeout: float) -> ProblemError:
    """What a failed upstream call means for the caller."""
    cause = exc.__cause__
    # httpx-aiohttp maps some aiohttp read timeouts to httpx.ConnectTimeout: look at the cause.
    read_timeout = isinstance(cause, ServerTimeoutError) and not isinstance(cause, ConnectionTimeoutError)
    if isinstance(exc, TimeoutError | httpx.ReadTimeout | httpx.WriteTimeout) or read_timeout:
        return GatewayTimeout(f"The {service} service did not answer within {timeout:g} s.")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return ServiceUnavailable(
            f"The {service} service is unavailable; try again shortly.", headers={"Retry-After": "5"}
        )
    return BadGateway(f"The {service} service gave no valid answer.")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) anything over `limit` bytes before reading it all."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body: bytes = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        chunks.append(body)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class Proxy:
    """ASGI app forwarding a `/v1` request to its service (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        loader: RouteTableLoader,
        transport: httpx.AsyncBaseTransport,
        tokens: InternalTokenCache,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.settings = settings
        self.loader = loader
        # Straight to the shared client's transport: the client's cookie, auth and redirect
        # layers cost more than half the gateway's own time per request and do nothing here.
        self.transport = transport
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.timeout = settings.upstream_timeout_seconds
        self.timeouts = httpx.Timeout(
            settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
        ).as_dict()
        self.base_urls = {s: settings.url_for(s) for s in loader.services}  # type: ignore[arg-type]
        # Production's transport is httpx's API over an aiohttp session: talk to the session
        # itself, without building an httpx Request (URL parsing, header models) only for the
        # transport to turn it into an aiohttp one. Any other transport (tests) goes through httpx.
        self.aiohttp = transport if isinstance(transport, AiohttpTransport) else None
        self.aiohttp_timeout = ClientTimeout(
            sock_connect=settings.upstream_connect_timeout_seconds,
            sock_read=settings.upstream_timeout_seconds,
            connect=settings.upstream_timeout_seconds,
        )

    def _session(self) -> aiohttp.ClientSession:
        """The aiohttp session under production's transport (made on first use)."""
        transport = self.aiohttp
        assert transport is not None
        client = transport.client
        if not isinstance(client, aiohttp.ClientSession):
            client = transport.client = transport.get_client()
        return client

    async def fetch(
        self,
        url: str,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        timeout: float,
        connect_timeout: float,
    ) -> tuple[int, bytes]:
        """One GET read whole (a composed view's part): its status and body. On the aiohttp
        session when there is one, as the proxy forwards; failures come out as httpx's
        exceptions on either path."""
        if self.aiohttp is None:
            limits = httpx.Timeout(timeout, connect=connect_timeout)
            request = httpx.Request(
                "GET", httpx.URL(url, params=params), headers=headers, extensions={"timeout": limits.as_dict()}
            )
            response = await self.transport.handle_async_request(request)
            try:
                return response.status_code, await response.aread()
            finally:
                await response.aclose()
        with map_aiohttp_exceptions():
            async with self._session().get(
                url,
                params=params,
                headers=headers,
                allow_redirects=False,
                timeout=ClientTimeout(total=timeout, sock_connect=connect_timeout),
            ) as answer:
                return answer.status, await answer.read()

    async def route_for(self, method: str, path: str) -> Route:
        """The route for this request, or the problem saying why there is none."""
        if not path.startswith(PUBLIC_PREFIX):
            raise NotFound("No such endpoint.")
        match = self.loader.table.match(method, path)
        if match.route is None and await self.loader.refresh_if_due():
            match = self.loader.table.match(method, path)
        if match.route is not None:
            return match.route
        if match.allowed:
            allow = ", ".join(sorted(match.allowed))
            raise MethodNotAllowed(f"{method} is not allowed here; use {allow}.", headers={"Allow": allow})
        if self.loader.missing:
            raise ServiceUnavailable(
                f"Some services cannot be reached ({', '.join(self.loader.missing)}); try again shortly.",
                headers={"Retry-After": "5"},
            )
        raise NotFound("No such endpoint.")

    def upstream_headers(self, scope: Scope, token: str) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in scope["headers"] if k in FORWARDED_REQUEST_HEADERS]
        # Pass the caller's encoding choice through; without one ask for identity, so httpx's
        # own default never makes the service compress for a client that did not ask.
        encoding = next((v for k, v in scope["headers"] if k == b"accept-encoding"), b"identity")
        headers.append((b"accept-encoding", encoding))
        headers.append((INTERNAL_TOKEN_HEADER.lower().encode(), token.encode()))
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            headers.append((b"x-request-id", request_id.encode()))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = await self.route_for(scope["method"], scope["path"])
        scope["route"] = route  # the route template labels this request's metrics and logs
        caller = await resolve_caller(Request(scope, receive))
        if caller is None:
            raise Unauthorized("Send a bearer token (Authorization) or an API key (X-API-Key).")
        body = await read_body(scope, receive, self.max_body_bytes)

        raw_path = scope.get("raw_path") or scope["path"].encode()
        url = self.base_urls[route.service] + raw_path.decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = self.upstream_headers(scope, self.tokens.token_for(caller))
        if self.aiohttp is not None:
            await self._forward_aiohttp(scope, send, route, url, headers, body)
            return
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.transport.handle_async_request(
                    httpx.Request(
                        scope["method"], url, headers=headers, content=body, extensions={"timeout": self.timeouts}
                    )
                )
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._upstream_failed(route, exc) from exc

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _answer_headers(response.headers.raw),
                }
            )
            async for chunk in response.aiter_raw():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError as exc:
            # The status line is already out: all we can do is cut the answer short.
            log.warning("upstream_broke_mid_answer", service=route.service, error=type(exc).__name__)
            raise
        finally:
            await response.aclose()

    def _upstream_failed(self, route: Route, exc: Exception) -> Exception:
        """The problem for an upstream that failed before its answer started, logged."""
        log.warning("upstream_failed", service=route.service, route=route.template, error=type(exc).__name__)
        return upstream_problem(route.service, exc, self.timeout)

    async def _forward_aiohttp(
        self, scope: Scope, send: Send, route: Route, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """The same exchange straight on the aiohttp session. As on the httpx path, the
        deadline and the failure problems cover the wait for the answer (and, for an answer
        with a length, reading it whole, to send it in one piece); once the status line is out,
        a long stream is only bounded per read, and a break cuts the answer short. Failures
        surface as httpx's exceptions (`map_aiohttp_exceptions`), so `upstream_problem` reads
        both paths alike."""
        client = self._session()
        whole: bytes | None = None
        try:
            async with asyncio.timeout(self.timeout):
                with map_aiohttp_exceptions():
                    response = await client.request(
                        scope["method"],
                        url,
                        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                        data=body or None,
                        allow_redirects=False,
                        auto_decompress=False,
                        compress=False,
                        timeout=self.aiohttp_timeout,
                    )
                    try:
                        if response.content_length is not None and response.content_length <= _WHOLE_ANSWER_BYTES:
                            whole = await response.read()
                    except BaseException:
                        response.release()
                        raise
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._upstream_failed(route, exc) from exc

        async with response:
            start = {"type": "http.response.start", "status": response.status}
            await send({**start, "headers": _answer_headers(response.raw_headers)})
            if whole is not None:
                await send({"type": "http.response.body", "body": whole, "more_body": False})
                return
            try:
                async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The status line is already out: all we can do is cut the answer short.
                log.warning("upstream_broke_mid_answer", service=route.service, error=type(exc).__name__)
                raise
            await send({"type": "http.response.body", "body": b"", "more_body": False})


# Answers up to this size are read whole, then sent in one piece (nearly all of them).
_WHOLE_ANSWER_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024


def _answer_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream answer's headers, less hop-by-hop ones and those this process sets."""
    return [(name, value) for name, value in ((k.lower(), v) for k, v in raw) if name not in DROPPED_RESPONSE_HEADERS]


def own_route_table(app: Starlette) -> RouteTable | None:
    """The gateway's own `/v1` templates; None if one uses a convertor this table cannot mirror."""
    routes = []
    for context in iter_route_contexts(app.routes):  # included routers too
        path = context.path or ""
        if not path.startswith(PUBLIC_PREFIX):
            continue
        if ":" in path:
            return None
        routes.append(Route("gateway", path, frozenset(context.methods or {"GET"})))
    return RouteTable(routes)


class ProxyFastPath:
    """Hands `/v1` requests that no gateway route claims straight to the proxy.

    The router would reach the same proxy (its fallback) only after trying every gateway
    route in turn, a quarter of the gateway's time per request. A path any gateway route
    matches, whatever the method, still goes through the router, so the gateway's own
    routes keep winning. Problems are rendered here, as the app's handlers would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._own: RouteTable | None = None
        self._checked = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy: Proxy | None = None
        if scope["type"] == "http" and scope["path"].startswith(PUBLIC_PREFIX):
            gateway = scope["app"]
            if not self._checked:
                self._own, self._checked = own_route_table(gateway), True
            proxy = getattr(gateway.state, "proxy", None)
            if self._own is None:
                proxy = None
            else:
                claimed = self._own.match(scope["method"], scope["path"])
                if claimed.route is not None or claimed.allowed:
                    proxy = None
        if proxy is None:
            await self.app(scope, receive, send)
            return
        try:
            await proxy(scope, receive, send)
        except ProblemError as exc:
            response = problem_response(
                exc.status_code,
                exc.type_slug,
                exc.problem_title,
                exc.detail,
                instance=scope["path"],
                headers=exc.headers,
                **exc.extra,
            )
            await response(scope, receive, send)
