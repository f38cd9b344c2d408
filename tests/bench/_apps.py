"""App factories the benches start with uvicorn (`--factory tests.bench._apps:<name>`).

- `gateway`: the production gateway, real authentication included, with its upstream pool
  sized by `QUNYUN_BENCH_POOL`. `QUNYUN_BENCH_TRANSPORT=httpx` swaps the production HTTP
  client's transport (aiohttp) for httpx's own, to compare the two.

The services run their production factories (`services.<name>.app:create_app`).
"""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI

from services.common.app import aiohttp_transport
from services.common.settings import get_settings


def gateway() -> FastAPI:
    from services.gateway.app import create_app

    size = int(os.environ.get("QUNYUN_BENCH_POOL", "200"))
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    if os.environ.get("QUNYUN_BENCH_TRANSPORT") == "httpx":
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
    else:
        transport = aiohttp_transport(limits)  # what production uses (build_http_client)
    return create_app(get_settings(), transport=transport)
