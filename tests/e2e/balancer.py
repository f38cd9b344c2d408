"""A small round-robin HTTP reverse proxy with failover, for tests that run service replicas.

    python -m tests.e2e.balancer --port 9001 http://127.0.0.1:9101 http://127.0.0.1:9102

Each request goes to the next upstream in turn. When an upstream refuses the connection
(its process is gone), the request was never sent, so it goes to the next one instead and
the refusing upstream is skipped for a second. Any other failure (the upstream died while
it held the request) is a 502: the request may have been applied, so only the caller may
decide to retry. It listens on 127.0.0.1 only and passes bodies and headers through
unchanged, apart from hop-by-hop headers.

`GET /_balancer/stats` answers its own figures: requests forwarded, fail-overs, requests
cut (502), and the event ids relays posted through it (`/internal/events`): how many
posts, how many distinct ids, how many ids were posted more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections import Counter

import uvloop
from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, TCPConnector, web

# Hop-by-hop headers (RFC 9110 7.6.1), and those aiohttp sets itself from the body it sends.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
DOWN_FOR_SECONDS = 1.0
EVENTS_PATH = "/internal/events"  # where relays post events: counted, see Balancer.stats
STATS_PATH = "/_balancer/stats"  # the balancer's own figures (JSON), never forwarded


class Balancer:
    """Forwards every request to one of `upstreams`, round-robin, failing over on refusals."""

    def __init__(self, upstreams: list[str], timeout: float = 60.0) -> None:
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.timeout = timeout
        self._turn = itertools.count()
        self._down_until: dict[str, float] = {}
        self._session: ClientSession | None = None
        self.forwarded = 0
        self.failed_over = 0
        self.cut = 0  # requests that failed after they were sent (502)
        self.event_posts: Counter[str] = Counter()  # relay posts: event id -> times forwarded

    async def start(self) -> None:
        self._session = ClientSession(
            connector=TCPConnector(limit=0),
            timeout=ClientTimeout(total=self.timeout, sock_connect=2),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _order(self) -> list[str]:
        """The upstreams to try, starting at this request's turn; those marked down go last."""
        start = next(self._turn) % len(self.upstreams)
        turn = self.upstreams[start:] + self.upstreams[:start]
        now = time.monotonic()
        return [u for u in turn if self._down_until.get(u, 0) <= now] + [
            u for u in turn if self._down_until.get(u, 0) > now
        ]

    def stats(self) -> dict[str, int]:
        return {
            "forwarded": self.forwarded,
            "failed_over": self.failed_over,
            "cut": self.cut,
            "events_posted": sum(self.event_posts.values()),
            "events_distinct": len(self.event_posts),
            "events_posted_again": sum(1 for n in self.event_posts.values() if n > 1),
        }

    async def handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _count_events(self, request: web.Request, body: bytes) -> None:
        """Which event ids relays post (a relay that died mid-post makes another post them again)."""
        if request.method != "POST" or request.path != EVENTS_PATH:
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.event_posts.update(str(event["id"]) for event in json.loads(body)["events"])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self._count_events(request, body)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        refused = []
        for upstream in self._order():
            try:
                async with self._session.request(
                    request.method,
                    upstream + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    self.forwarded += 1
                    self._down_until.pop(upstream, None)
                    return web.Response(
                        status=answer.status,
                        body=payload,
                        headers=[(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP],
                    )
            except ClientConnectorError as exc:  # not connected: the request was never sent
                self._down_until[upstream] = time.monotonic() + DOWN_FOR_SECONDS
                self.failed_over += 1
                refused.append(f"{upstream}: {exc}")
            except (ClientError, TimeoutError) as exc:  # it may have been applied: the caller decides
                self.cut += 1
                return web.json_response(
                    {"title": "Bad gateway", "status": 502, "detail": f"{upstream}: {type(exc).__name__}: {exc}"},
                    status=502,
                    content_type="application/problem+json",
                )
        return web.json_response(
            {"title": "Service unavailable", "status": 503, "detail": "; ".join(refused)},
            status=503,
            content_type="application/problem+json",
        )


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (a test run killed hard)."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1)
    stop.set()


async def serve(port: int, upstreams: list[str], parent_pid: int | None = None) -> None:
    balancer = Balancer(upstreams)
    await balancer.start()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get(STATS_PATH, balancer.handle_stats)
    app.router.add_route("*", "/{tail:.*}", balancer.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"balancer listening on 127.0.0.1:{port} -> {' '.join(upstreams)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    print(f"balancer stopping: {json.dumps(balancer.stats())}", flush=True)
    await runner.cleanup()
    await balancer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, help="exit when this process is no longer the parent")
    parser.add_argument("upstreams", nargs="+")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstreams, args.parent_pid))


if __name__ == "__main__":
    main()
