"""`GET /console`: one page and its assets, from the package, with strict headers.

What a browser needs from the server side: the right content types, a Content-Security-
Policy that allows no inline script and nothing from another origin, cache headers that
let the vendored ECharts be kept and our own files be revalidated, no remote asset
anywhere, the vendored file exactly as recorded, the assets shipped as package data, and
no trace of the page in the API document or the proxy. The page itself is driven in a
real browser in `tests/e2e/test_console_browser.py`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from services.gateway import console
from tests.system import System

ROOT = Path(__file__).resolve().parents[2]
VENDORED = json.loads((console.VENDOR_DIR / "VENDORED.json").read_text())
ECHARTS = f"echarts-{VENDORED['version']}.min.js"
ECHARTS_URL = f"/console/assets/vendor/echarts/{ECHARTS}"
OWN_ASSETS = ["console.js", "api.js", "charts.js", "i18n.js", "console.css"]


def csp_directives(header: str) -> dict[str, list[str]]:
    return {name: rest for name, *rest in (part.split() for part in header.split(";") if part.strip())}


async def test_page_is_html_with_a_strict_policy(system: System) -> None:
    async with system.anonymous() as client:
        page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "ratelimit" not in page.headers  # a static page is not counted against anyone
    policy = csp_directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]  # a form the script did not take over sends nothing
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


async def test_page_has_no_inline_script_and_loads_only_its_own_assets(system: System) -> None:
    async with system.anonymous() as client:
        html = (await client.get("/console")).text
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert scripts
        assert all('src="' in attrs and body.strip() == "" for attrs, body in scripts)
        assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers either
        assert "style=" not in html
        referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        local = [ref for ref in referenced if not ref.startswith(("data:", "#"))]
        assert set(local) == {
            "console/assets/console.css",
            f"console/assets/vendor/echarts/{ECHARTS}",
            "console/assets/console.js",
        }
        for name in OWN_ASSETS:
            text = (await client.get(f"/console/assets/{name}")).text
            for source in (html, text):
                assert re.findall(r"https?://|//cdn|googleapis|unpkg|jsdelivr", source) == [], name
            # Scripts import only their siblings, and call only the API on this origin.
            assert set(re.findall(r"""from\s+["']([^"']+)["']""", text)) <= {"./api.js", "./charts.js", "./i18n.js"}
            assert re.search(r"\b(localStorage|sessionStorage|indexedDB)\s*[.\[]|document\.cookie", text) is None
            assert "innerHTML" not in text  # API text is set as text only
            assert "getContext(" not in text  # no drawing by hand: ECharts draws


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("i18n.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("vendor/echarts/LICENSE", "text/plain; charset=utf-8"),
        ("vendor/echarts/NOTICE", "text/plain; charset=utf-8"),
    ],
)
async def test_own_assets_are_typed_and_revalidated(system: System, name: str, content_type: str) -> None:
    async with system.anonymous() as client:
        answer = await client.get(f"/console/assets/{name}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == content_type
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["x-content-type-options"] == "nosniff"
        again = await client.get(f"/console/assets/{name}", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304


async def test_vendored_echarts_is_served_for_a_year_and_matches_its_checksum(system: System) -> None:
    async with system.anonymous() as client:
        answer = await client.get(ECHARTS_URL)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert hashlib.sha256(answer.content).hexdigest() == VENDORED["files"][ECHARTS]["sha256"]
    assert f'version="{VENDORED["version"]}"' in answer.text  # the build is the version it says


def test_vendored_files_match_the_recorded_checksums() -> None:
    files = VENDORED["files"]
    assert set(files) == {path.name for path in console.VENDOR_DIR.iterdir()} - {"VENDORED.json"}
    for name, record in files.items():
        assert hashlib.sha256((console.VENDOR_DIR / name).read_bytes()).hexdigest() == record["sha256"], name
    assert "Apache License" in (console.VENDOR_DIR / "LICENSE").read_text()
    assert "Apache ECharts" in (console.VENDOR_DIR / "NOTICE").read_text()
    assert VENDORED["version"].startswith("5.")


def test_assets_ship_in_the_wheel() -> None:
    """Every file the page needs is matched by the package-data patterns (setuptools globs)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["services.gateway.console"]
    package = Path(console.__file__).parent
    shipped = {Path(p) for pattern in patterns for p in glob.glob(str(package / pattern)) if Path(p).is_file()}
    needed = {p for p in console.STATIC_DIR.rglob("*") if p.is_file()}
    assert needed
    assert needed == shipped


async def test_console_is_not_an_api_operation_nor_proxied(system: System) -> None:
    async with system.anonymous() as client:
        document = (await client.get("/openapi.json")).json()
        assert not [path for path in document["paths"] if path.startswith("/console")]
        missing = await client.get("/console/assets/nope.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert (await client.post("/console")).status_code == 405
