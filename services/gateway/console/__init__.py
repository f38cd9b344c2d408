"""`/console`: the operator console, one page and its assets, served from this package.

Everything the page loads comes from `static/` beside this file (shipped in the wheel as
package data), so it works offline like `/docs`: our own JavaScript and CSS, and Apache
ECharts vendored from its npm package (`static/vendor/echarts/`, with its licence and the
checksums in `VENDORED.json`). The page talks to the public `/v1` API like any client, with
the tokens of the staff login kept in memory only.

Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
only, no inline script, API calls to this origin only, no framing). The vendored file has
its version in its name, so browsers may keep it for a year; the page and our own assets
are revalidated on every load (ETag), so a new release shows at once. None of these routes
is an API operation: they stay out of the OpenAPI document, and the proxy never sees them
(it only forwards `/v1/...`).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor" / "echarts"
PAGE_PATH = "/console"
ASSETS_URL = "/console/assets"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        # The login form is sent by the page's script; a native submission (the script
        # failed to load) must not carry the password anywhere.
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}
PLAIN_TEXT = "text/plain; charset=utf-8"  # LICENSE, NOTICE


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1], PLAIN_TEXT)


def cache_control(path: str) -> str:
    """Versioned vendored files never change under their name; everything else is revalidated."""
    name = os.path.basename(path)
    return IMMUTABLE if Path(path).parent == VENDOR_DIR and name.startswith("echarts-") else REVALIDATE


class ConsoleAssets(StaticFiles):
    """The page's assets with explicit content types, cache and security headers."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        path = os.fspath(full_path)
        if response.status_code == 200:
            response.headers["Content-Type"] = content_type(path)
        response.headers["Cache-Control"] = cache_control(path)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_console(app: FastAPI) -> None:
    """Adds `GET /console` and its assets under `/console/assets/`."""
    page = (STATIC_DIR / "index.html").read_bytes()
    app.mount(ASSETS_URL, ConsoleAssets(directory=STATIC_DIR), name="console-assets")

    @app.get(PAGE_PATH, include_in_schema=False)
    async def console_page() -> Response:
        """The operator console (a page for browsers, not an API operation)."""
        headers = {**SECURITY_HEADERS, "Cache-Control": REVALIDATE}
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)
