// ECharts options for each chart of the dashboard: data in, options out, nothing drawn here.
// Tooltips are drawn by ECharts itself (renderMode "richText"), not as HTML with inline
// styles, so the page's Content-Security-Policy needs no 'unsafe-inline'.

import { t } from "./i18n.js";

const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

function base(extra) {
  return {
    animation: !reduceMotion,
    textStyle: { fontFamily: "system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'PingFang SC', sans-serif" },
    tooltip: { renderMode: "richText", confine: true },
    grid: { left: 48, right: 56, top: 48, bottom: 40, containLabel: true },
    ...extra,
  };
}

// Light to dark blue: an empty cell reads as empty.
const SCALE = ["#f3f6fc", "#a9bbe8", "#5470c6", "#233a8a"];
const percent = (value) => `${Math.round(value * 100)}%`;
const round2 = (value) => Math.round(value * 100) / 100;
const count = (value) => (Array.isArray(value) ? value.length : Number(value ?? 0));

/** DAU, WAU, MAU per day (left axis) and stickiness (DAU/MAU, right axis). */
export function engagementOption(days) {
  return base({
    tooltip: { trigger: "axis", renderMode: "richText", confine: true },
    legend: { top: 0 },
    xAxis: { type: "category", data: days.map((d) => d.day) },
    yAxis: [
      { type: "value", name: t("series.members"), minInterval: 1 },
      { type: "value", name: t("series.stickiness"), min: 0, max: 1, axisLabel: { formatter: percent } },
    ],
    series: [
      { name: t("series.dau"), type: "line", data: days.map((d) => d.dau) },
      { name: t("series.wau"), type: "line", data: days.map((d) => d.wau) },
      { name: t("series.mau"), type: "line", data: days.map((d) => d.mau) },
      {
        name: t("series.stickiness"),
        type: "line",
        yAxisIndex: 1,
        lineStyle: { type: "dashed" },
        areaStyle: { opacity: 0.08 },
        data: days.map((d) => round2(d.stickiness)),
      },
    ],
  });
}

/** Weekly join cohorts (oldest on top) x weeks since joining: a triangle of retained shares. */
export function retentionOption(cohorts) {
  const weeks = Math.max(1, ...cohorts.map((c) => c.retained.length));
  const data = cohorts.flatMap((c, y) => c.retained.map((share, x) => [x, y, round2(share)]));
  return base({
    grid: { left: 8, right: 16, top: 16, bottom: 64, containLabel: true },
    xAxis: { type: "category", data: Array.from({ length: weeks }, (_, n) => t("series.week", { n })), splitArea: { show: true } },
    yAxis: {
      type: "category",
      inverse: true,
      data: cohorts.map((c) => t("series.cohort", { day: String(c.cohort_start).slice(5), size: c.size })),
      splitArea: { show: true },
    },
    visualMap: { min: 0, max: 1, calculable: true, orient: "horizontal", left: "center", bottom: 0, formatter: percent, inRange: { color: SCALE } },
    series: [
      {
        name: t("series.retained"),
        type: "heatmap",
        data,
        label: { show: true, fontSize: 10, formatter: (p) => percent(p.value[2]) },
      },
    ],
  });
}

/** Event counts by local weekday (Monday first) x local hour. */
export function heatmapOption(counts, zone) {
  const data = counts.flatMap((row, day) => row.map((count, hour) => [hour, day, count]));
  const max = Math.max(1, ...data.map((d) => d[2]));
  return base({
    grid: { left: 8, right: 16, top: 24, bottom: 64, containLabel: true },
    title: { text: zone, right: 8, top: 0, textStyle: { fontSize: 11, fontWeight: "normal", color: "#667" } },
    xAxis: { type: "category", data: Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0")), splitArea: { show: true } },
    yAxis: { type: "category", inverse: true, data: t("weekdays"), splitArea: { show: true } },
    visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0, inRange: { color: SCALE } },
    series: [{ name: t("series.events"), type: "heatmap", data }],
  });
}

/** The coming best slots, best first, as local times in the community's zone, by their activity share. */
export function bestTimesOption(items, zone, locale) {
  const format = new Intl.DateTimeFormat(locale, { timeZone: zone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return base({
    tooltip: { trigger: "axis", renderMode: "richText", confine: true },
    grid: { left: 8, right: 40, top: 16, bottom: 24, containLabel: true },
    yAxis: { type: "category", inverse: true, data: items.map((i) => format.format(new Date(i.at))) },
    xAxis: { type: "value", name: t("series.score"), nameLocation: "middle", nameGap: 24, axisLabel: { formatter: percent } },
    series: [{ name: t("series.score"), type: "bar", data: items.map((i) => round2(i.score)), label: { show: true, position: "right", formatter: (p) => percent(p.value) } }],
  });
}

/** Points issued against redeemed (and expired) over the range. */
export function pointsOption(points) {
  const names = [t("series.issued"), t("series.redeemed"), t("series.expired")];
  if (Array.isArray(points.days)) {
    return base({
      tooltip: { trigger: "axis", renderMode: "richText", confine: true },
      legend: { top: 0 },
      xAxis: { type: "category", data: points.days.map((d) => d.day) },
      yAxis: { type: "value", name: t("series.points") },
      series: ["issued", "redeemed", "expired"].map((key, i) => ({ name: names[i], type: "bar", data: points.days.map((d) => d[key] ?? 0) })),
    });
  }
  return base({
    xAxis: { type: "category", data: names },
    yAxis: { type: "value", name: t("series.points") },
    series: [
      {
        name: t("series.points"),
        type: "bar",
        colorBy: "data",
        data: [points.issued ?? 0, points.redeemed ?? 0, points.expired ?? 0],
        label: { show: true, position: "top" },
      },
    ],
  });
}

/** Two gauges: the share of tickets within their SLA, and the average CSAT rating. */
export function supportOption(support) {
  const gauge = (center, name, value, min, max, format) => ({
    name,
    type: "gauge",
    center,
    radius: "62%",
    min,
    max,
    startAngle: 220,
    endAngle: -40,
    pointer: { show: false },
    progress: { show: true, width: 12, roundCap: true },
    axisLine: { lineStyle: { width: 12 } },
    axisTick: { show: false },
    splitLine: { show: false },
    axisLabel: { show: false },
    title: { offsetCenter: [0, "78%"], fontSize: 12 },
    detail: { valueAnimation: !reduceMotion, offsetCenter: [0, "0%"], fontSize: 20, fontWeight: 600, formatter: (v) => (v === null || Number.isNaN(v) ? "—" : format(v)) },
    data: value === null || value === undefined ? [] : [{ value, name }],
  });
  const median = support.median_first_response_minutes;
  return base({
    title: median === null || median === undefined ? undefined : { text: `${t("series.first_response")}: ${Math.round(median)}`, left: "center", bottom: 0, textStyle: { fontSize: 12, fontWeight: "normal" } },
    series: [
      gauge(["26%", "48%"], t("series.sla"), support.sla_attainment === null ? null : round2(support.sla_attainment), 0, 1, percent),
      gauge(["74%", "48%"], t("series.csat"), support.csat_average === null ? null : round2(support.csat_average), 1, 5, (v) => Number(v).toFixed(1)),
    ],
  });
}

/** Open tickets by status. */
export function backlogOption(backlog) {
  const statuses = Object.keys(backlog);
  return base({
    xAxis: { type: "category", data: statuses.map((s) => t(`status.${s}`)) },
    yAxis: { type: "value", minInterval: 1, name: t("series.backlog") },
    series: [{ name: t("series.backlog"), type: "bar", data: statuses.map((s) => backlog[s]), label: { show: true, position: "top" } }],
  });
}

/** Posts published in the range and scheduled ahead. */
export function contentOption(content) {
  return base({
    xAxis: { type: "category", data: [t("series.published"), t("series.scheduled")] },
    yAxis: { type: "value", minInterval: 1, name: t("series.posts") },
    series: [{ name: t("series.posts"), type: "bar", colorBy: "data", data: [count(content.published), count(content.scheduled)], label: { show: true, position: "top" } }],
  });
}
