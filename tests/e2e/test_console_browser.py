"""The operator console in a real browser: Debian's Chromium, headless, driven by Playwright.

The whole system runs in-process (the `system` fixture) and the gateway is served over
HTTP on a loopback port; the browser loads `/console`, logs in through the form as the
admin, picks the seeded community and draws the dashboard. Each chart is checked through
ECharts' own API (`echarts.getInstanceByDom(el).getOption()`): it is drawn on a canvas,
and its data are the API's figures. Then: the churn-risk list opens a member's overview,
an expired access token is refreshed (the refresh token rotated, nothing kept in
storage), a service that does not answer shows as unavailable, and the labels follow a
Chinese browser. The page's screenshot is saved under the test's tmp dir (and to
`QUNYUN_CONSOLE_SCREENSHOT`, e.g. `docs/console.png`, when set).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Request, Route, async_playwright

from tests.e2e.console_support import SeededCommunity, seed_console_community, serve_http
from tests.system import System, staff

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("QUNYUN_CHROMIUM", "/usr/bin/chromium")
CHARTS = (
    "chart-engagement",
    "chart-retention",
    "chart-heatmap",
    "chart-best-times",
    "chart-points",
    "chart-support",
    "chart-backlog",
    "chart-content",
)
# Collects what the page's Content-Security-Policy refused (there must be nothing).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""
READ_CHARTS = """
(ids) => Object.fromEntries(ids.map((id) => {
  const el = document.getElementById(id);
  const chart = echarts.getInstanceByDom(el);
  if (!chart) return [id, {canvas: !!el.querySelector("canvas"), text: el.textContent}];
  const option = chart.getOption();
  return [id, {
    canvas: !!el.querySelector("canvas"),
    series: option.series.map((s) => ({name: s.name, data: s.data})),
    xAxis: (option.xAxis || []).map((a) => a.data || null),
    yAxis: (option.yAxis || []).map((a) => a.data || null),
  }];
}))
"""


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make chromium` installs Debian's package"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def api(system: System, path: str, **params: Any) -> Any:
    async with await system.client(staff("admin")) as client:
        answer = await client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def log_in_and_pick(page: Page, base: str, seeded: SeededCommunity) -> None:
    await page.goto(f"{base}/console")
    await page.fill("#username", seeded.admin_email)
    await page.fill("#password", seeded.admin_password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector(f"#community option[value='{seeded.community_id}']", state="attached")
    await page.select_option("#community", seeded.community_id)
    await page.wait_for_selector(f"#dashboard[data-state=ready][data-community='{seeded.community_id}']")


def round2(value: float) -> float:
    """As the page rounds (JavaScript's Math.round: halves up)."""
    return math.floor(value * 100 + 0.5) / 100


async def test_console_draws_the_dashboard(system: System, browser: Browser, tmp_path: Path) -> None:
    seeded = await seed_console_community(system)
    async with serve_http(system.apps["gateway"]) as base:
        async with await browser.new_context(
            locale="en-US", viewport={"width": 1360, "height": 900}, reduced_motion="reduce"
        ) as context:
            await context.add_init_script(WATCH_CSP)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[Request] = []
            page.on("request", lambda request: requests.append(request))
            await log_in_and_pick(page, base, seeded)

            window = {"community_id": seeded.community_id}
            window["from"] = await page.input_value("#from")
            window["to"] = await page.input_value("#to")
            dashboard = await api(system, "/v1/dashboard", **window)
            heatmap = await api(system, "/v1/analytics/activity-heatmap", **window)
            assert dashboard["degraded"] == []
            charts = await page.evaluate(READ_CHARTS, list(CHARTS))
            for chart_id in CHARTS:
                assert charts[chart_id]["canvas"], f"{chart_id} drew nothing: {charts[chart_id]}"

            days = dashboard["engagement"]["days"]
            assert sum(d["dau"] for d in days) > 0
            engagement = charts["chart-engagement"]
            assert engagement["xAxis"][0] == [d["day"] for d in days]
            assert [s["name"] for s in engagement["series"]] == ["DAU", "WAU", "MAU", "Stickiness (DAU/MAU)"]
            assert engagement["series"][0]["data"] == [d["dau"] for d in days]
            assert engagement["series"][2]["data"] == [d["mau"] for d in days]
            assert engagement["series"][3]["data"] == [round2(d["stickiness"]) for d in days]

            cohorts = dashboard["retention"]
            assert len(cohorts) > 1
            cells = {(x, y): v for x, y, v in charts["chart-retention"]["series"][0]["data"]}
            for y, cohort in enumerate(cohorts):
                for x, share in enumerate(cohort["retained"]):
                    assert cells[(x, y)] == round2(share)
            assert len(cells) == sum(len(c["retained"]) for c in cohorts)  # a triangle: newer cohorts, fewer weeks

            counts = heatmap["counts"]
            assert [len(row) for row in counts] == [24] * 7
            drawn = {(hour, day): n for hour, day, n in charts["chart-heatmap"]["series"][0]["data"]}
            assert drawn == {(h, d): counts[d][h] for d in range(7) for h in range(24)}
            assert sum(map(sum, counts)) > 0

            best = dashboard["best_times"]
            assert best
            assert charts["chart-best-times"]["series"][0]["data"] == [round2(b["score"]) for b in best]

            points = dashboard["points"]
            assert points["issued"] > 0
            assert points["redeemed"] == 10
            assert charts["chart-points"]["series"][0]["data"] == [
                points["issued"],
                points["redeemed"],
                points["expired"],
            ]

            support = dashboard["support"]
            gauges = charts["chart-support"]["series"]
            assert gauges[0]["data"][0]["value"] == round2(support["sla_attainment"])
            assert gauges[1]["data"][0]["value"] == round2(support["csat_average"]) == 4
            backlog = support["backlog_by_status"]
            assert charts["chart-backlog"]["series"][0]["data"] == list(backlog.values())
            assert sum(backlog.values()) >= 1

            content = dashboard["content"]
            assert content["scheduled"] == 1
            assert charts["chart-content"]["series"][0]["data"] == [content["published"], content["scheduled"]]

            # The churn-risk list, each member linking to their overview.
            at_risk = [item["member_id"] for item in dashboard["churn_risk"]]
            assert at_risk
            links = await page.eval_on_selector_all("#churn a.member-link", "els => els.map((a) => a.dataset.memberId)")
            assert links == at_risk
            await page.click(f"#churn a[data-member-id='{at_risk[0]}']")
            await page.wait_for_selector("#overview[data-state=ready]")
            path = f"/v1/members/{at_risk[0]}/overview"
            query = f"community_id={seeded.community_id}"
            assert await page.inner_text("#overview-path") == f"GET {path}?{query}"
            overview = json.loads(await page.inner_text("#overview-json"))
            assert overview["member"]["id"] == at_risk[0]
            assert overview == await api(system, path, community_id=seeded.community_id)

            await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            if target := os.environ.get("QUNYUN_CONSOLE_SCREENSHOT"):
                shutil.copyfile(tmp_path / "console.png", target)

            # Tokens live in memory only.
            assert await page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]

            # An access token that has expired: the page trades its refresh token once, then retries.
            login = next(r for r in requests if r.url.endswith("/v1/auth/token"))
            first_pair = await (await login.response()).json()  # type: ignore[union-attr]
            refused: list[str] = []

            async def expire_once(route: Route) -> None:
                if not refused:
                    refused.append(route.request.headers.get("authorization", ""))
                    await route.fulfill(status=401, json={"title": "Unauthorized", "status": 401})
                else:
                    await route.continue_()

            await page.route("**/v1/dashboard?*", expire_once)
            requests.clear()
            await page.click("#load")
            await page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Updated')")
            await page.wait_for_selector("#dashboard[data-state=ready]")
            refreshes = [r for r in requests if r.url.endswith("/v1/auth/refresh")]
            assert len(refreshes) == 1
            assert refreshes[0].post_data_json == {"refresh_token": first_pair["refresh_token"]}
            second_pair = await (await refreshes[0].response()).json()  # type: ignore[union-attr]
            retried = [r for r in requests if "/v1/dashboard?" in r.url][-1]
            assert refused == [f"Bearer {first_pair['access_token']}"]
            assert retried.headers["authorization"] == f"Bearer {second_pair['access_token']}"
            await page.unroute("**/v1/dashboard?*")

            assert await page.evaluate("window.__csp") == []
            assert errors == []


async def test_console_shows_missing_parts_and_speaks_chinese(system: System, browser: Browser) -> None:
    seeded = await seed_console_community(system, name="茶友会")
    rewards = system.transport.apps.pop("rewards")  # rewards stops answering
    try:
        async with serve_http(system.apps["gateway"]) as base:
            async with await browser.new_context(locale="zh-CN", reduced_motion="reduce") as context:
                await context.add_init_script(WATCH_CSP)
                page = await context.new_page()
                page.set_default_timeout(15_000)
                await page.goto(f"{base}/console")
                assert await page.evaluate("navigator.languages[0]") == "zh-CN"
                assert await page.inner_text("h1") == "群运控制台"
                assert await page.inner_text("#login-form button[type=submit]") == "登录"
                assert await page.evaluate("document.documentElement.lang") == "zh-CN"
                await log_in_and_pick(page, base, seeded)

                # The rewards part is missing: a notice says so and its chart area says unavailable.
                notice = await page.inner_text("#notices li[data-part=points]")
                assert notice == "积分暂不可用\uff1arewards 服务未响应"  # the label has a fullwidth colon
                assert await page.get_attribute("article[data-part=points]", "data-state") == "unavailable"
                charts = await page.evaluate(READ_CHARTS, list(CHARTS))
                assert charts["chart-points"] == {"canvas": False, "text": "暂不可用"}
                assert await page.eval_on_selector_all("#notices li", "els => els.map((li) => li.dataset.part)") == [
                    "points"
                ]
                # Everything else is drawn, labelled in Chinese.
                engagement = charts["chart-engagement"]
                assert engagement["canvas"]
                assert [s["name"] for s in engagement["series"]][:3] == ["日活", "周活", "月活"]
                assert charts["chart-heatmap"]["yAxis"][0] == ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
                assert charts["chart-content"]["xAxis"][0] == ["已发布", "已排期"]
                assert await page.inner_text("article[data-part=engagement] h2") == "日活与月活"
                assert await page.evaluate("window.__csp") == []
    finally:
        system.transport.apps["rewards"] = rewards
