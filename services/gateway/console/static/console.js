// The operator console: log in, pick a community, draw its dashboard.
//
// Everything shown comes from the public API (`GET /v1/dashboard`, plus the members'
// activity heat map and content's best times when the dashboard does not carry them).
// A part named in the dashboard's `degraded` list, or missing from it, gets a visible
// notice and its chart area says it is unavailable; the other parts are drawn as usual.
// Text from the API is only ever set as text (textContent), never parsed as HTML.

/* global echarts */
import { ApiError, Session } from "./api.js";
import * as charts from "./charts.js";
import { locale, t, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const itemsOf = (value) => (Array.isArray(value) ? value : value && Array.isArray(value.items) ? value.items : null);
const cohortsOf = (value) => (Array.isArray(value) ? value : value && Array.isArray(value.cohorts) ? value.cohorts : null);

// Each part of the page: the service that owns its data, how to find the data, how to draw it.
const PARTS = [
  { key: "engagement", service: "members", chart: "chart-engagement", pick: (d) => d.engagement?.days, draw: charts.engagementOption },
  { key: "retention", service: "members", chart: "chart-retention", pick: (d) => cohortsOf(d.retention), draw: charts.retentionOption },
  { key: "heatmap", service: "members", chart: "chart-heatmap", pick: (d) => d.heatmap, draw: (counts, ctx) => charts.heatmapOption(counts, ctx.zone) },
  { key: "best_times", service: "content", chart: "chart-best-times", pick: (d) => d.best_times, draw: (items, ctx) => charts.bestTimesOption(items, ctx.zone, locale) },
  { key: "points", service: "rewards", chart: "chart-points", pick: (d) => d.points, draw: charts.pointsOption },
  { key: "support", service: "feedback", chart: "chart-support", pick: (d) => d.support, draw: charts.supportOption },
  { key: "backlog", source: "support", service: "feedback", chart: "chart-backlog", pick: (d) => d.support?.backlog_by_status, draw: charts.backlogOption },
  { key: "content", service: "content", chart: "chart-content", pick: (d) => d.content, draw: charts.contentOption },
  { key: "churn_risk", service: "members", pick: (d) => itemsOf(d.churn_risk), draw: null },
];

const session = new Session({ onExpired: () => showLogin(t("session.expired")) });
let communities = [];

// --- login ---------------------------------------------------------------------------

function showLogin(message) {
  session.forget();
  $("app").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
}

async function onLogin(event) {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  const password = $("password");
  try {
    await session.login($("username").value, password.value);
  } catch (exc) {
    error.textContent = t("login.failed", { detail: exc.message });
    error.hidden = false;
    return;
  } finally {
    password.value = "";
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("session").hidden = false;
  $("who").textContent = $("username").value;
  await loadCommunities();
}

async function onLogout() {
  await session.logout();
  disposeCharts();
  $("dashboard").hidden = true;
  showLogin("");
}

// --- communities and filters ---------------------------------------------------------

async function loadCommunities() {
  communities = [];
  let cursor = null;
  do {
    const page = await session.get("/communities", { limit: 200, cursor });
    communities.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && communities.length < 2000);
  const select = $("community");
  select.replaceChildren(select.options[0]);
  for (const community of communities) {
    const option = document.createElement("option");
    option.value = community.id;
    option.textContent = community.name;
    select.append(option);
  }
  $("status").textContent = communities.length ? "" : t("status.no_communities");
}

function localDay(zone, offsetDays = 0) {
  const at = new Date(Date.now() + offsetDays * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}

function onCommunityChosen() {
  const community = communities.find((c) => c.id === $("community").value);
  if (!community) return;
  const zone = community.timezone || "Asia/Shanghai";
  $("to").value = localDay(zone);
  $("from").value = localDay(zone, -29);
  $("zone").textContent = t("filters.zone", { zone });
  loadDashboard();
}

// --- the dashboard -------------------------------------------------------------------

async function loadDashboard(event) {
  if (event) event.preventDefault();
  const communityId = $("community").value;
  if (!communityId) return;
  const range = { community_id: communityId, from: $("from").value, to: $("to").value };
  const board = $("dashboard");
  board.dataset.state = "loading";
  $("status").textContent = t("status.loading");
  let dashboard;
  try {
    dashboard = await session.get("/dashboard", range);
  } catch (exc) {
    board.dataset.state = "failed";
    $("status").textContent = t("status.failed", { detail: exc.message });
    return;
  }
  const community = dashboard.community || communities.find((c) => c.id === communityId) || {};
  render(dashboard, { zone: community.timezone || "Asia/Shanghai" });
  board.dataset.community = communityId;
  board.dataset.state = "ready";
  $("status").textContent = t("status.loaded", { time: new Date().toLocaleTimeString(locale) });
}

function render(dashboard, ctx) {
  const degraded = new Set((dashboard.degraded || []).map(String));
  const notices = $("notices");
  notices.replaceChildren();
  $("dashboard").hidden = false;
  for (const part of PARTS) {
    const card = document.querySelector(`article[data-part="${part.key}"]`);
    const named = degraded.has(part.key) || degraded.has(part.source) || degraded.has(part.service);
    const data = named ? null : part.pick(dashboard);
    if (data === null || data === undefined) {
      const reason = degraded.has(part.service) ? t("degraded.service", { service: part.service }) : t("degraded.failed");
      const notice = document.createElement("li");
      notice.className = "notice";
      notice.dataset.part = part.key;
      notice.textContent = t("degraded.notice", { part: t(`part.${part.key}`), reason });
      notices.append(notice);
      markUnavailable(card, part);
      continue;
    }
    card.dataset.state = "ready";
    card.classList.remove("is-unavailable");
    if (part.draw) {
      drawChart($(part.chart), part.draw(data, ctx));
    } else {
      renderChurn(card, data);
    }
  }
}

function markUnavailable(card, part) {
  card.dataset.state = "unavailable";
  card.classList.add("is-unavailable");
  if (part.chart) {
    const el = $(part.chart);
    echarts.getInstanceByDom(el)?.dispose();
    el.textContent = t("unavailable");
  } else {
    card.querySelector("tbody").replaceChildren();
    card.querySelector(".unavailable").hidden = false;
  }
}

function drawChart(el, option) {
  let chart = echarts.getInstanceByDom(el);
  if (!chart) {
    el.textContent = "";
    chart = echarts.init(el, null, { renderer: "canvas", locale: locale === "zh-CN" ? "ZH" : "EN" });
  }
  chart.setOption(option, { notMerge: true });
}

function disposeCharts() {
  for (const part of PARTS) {
    if (part.chart) echarts.getInstanceByDom($(part.chart))?.dispose();
  }
}

function renderChurn(card, items) {
  card.querySelector(".unavailable").hidden = true;
  const body = card.querySelector("tbody");
  const when = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
  const rows = items.map((item) => {
    const row = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `#/members/${encodeURIComponent(item.member_id)}`;
    link.className = "member-link";
    link.dataset.memberId = item.member_id;
    link.textContent = item.display_name || item.member_id;
    const cells = [
      link,
      item.last_active_at ? when.format(new Date(item.last_active_at)) : t("churn.never"),
      String(item.recent),
      String(item.previous),
      `${Math.round(item.score * 100)}%`,
      (item.reasons || []).join("; "),
    ];
    for (const content of cells) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    }
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 6;
    cell.textContent = t("churn.none");
    row.append(cell);
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

// --- a member's overview -------------------------------------------------------------

async function showOverview(memberId) {
  const path = `/members/${encodeURIComponent(memberId)}/overview`;
  const params = { community_id: $("dashboard").dataset.community }; // the contact budget's community
  const panel = $("overview");
  panel.hidden = false;
  panel.dataset.state = "loading";
  $("overview-path").textContent = `GET /v1${path}?${new URLSearchParams(params)}`;
  const summary = $("overview-summary");
  summary.replaceChildren();
  try {
    const overview = await session.get(path, params);
    const points = overview.points || {};
    const facts = [
      ["overview.name", overview.member?.display_name ?? "—"],
      ["overview.balance", points.balance ?? "—"],
      ["overview.level", points.level?.name ?? "—"],
      ["overview.badges", itemsOf(overview.badges)?.length ?? "—"],
      ["overview.open_tickets", itemsOf(overview.open_tickets)?.length ?? overview.open_tickets ?? "—"],
      ["overview.degraded", (overview.degraded || []).join(", ") || "—"],
    ];
    for (const [label, value] of facts) {
      const term = document.createElement("dt");
      term.textContent = t(label);
      const detail = document.createElement("dd");
      detail.textContent = String(value);
      summary.append(term, detail);
    }
    $("overview-json").textContent = JSON.stringify(overview, null, 2);
    panel.dataset.state = "ready";
  } catch (exc) {
    $("overview-json").textContent = exc.message;
    panel.dataset.state = "failed";
  }
  panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function onChurnClick(event) {
  const link = event.target.closest("a.member-link");
  if (!link) return;
  event.preventDefault();
  showOverview(link.dataset.memberId);
}

// --- start ---------------------------------------------------------------------------

translatePage();
$("login-form").addEventListener("submit", onLogin);
$("logout").addEventListener("click", onLogout);
$("community").addEventListener("change", onCommunityChosen);
$("filters").addEventListener("submit", loadDashboard);
$("churn").addEventListener("click", onChurnClick);
$("overview-close").addEventListener("click", () => {
  $("overview").hidden = true;
});
window.addEventListener("resize", () => {
  for (const part of PARTS) {
    if (part.chart) echarts.getInstanceByDom($(part.chart))?.resize();
  }
});
document.body.dataset.ready = "true";
