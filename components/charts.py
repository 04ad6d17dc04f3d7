"""Live ECharts: built once with the last minutes, then fed one point per sample on the client side,
so each update sends a few numbers instead of the whole series."""

from __future__ import annotations

from typing import Any

from nicegui import ui

PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed"]

# Client side of the live charts. The server never keeps a chart's points in the page's props:
# `noxSeed` fills a chart once after it mounts, `noxAppend` adds one point per sample and drops points
# older than the window, and both redraw the sparklines drawn from that chart (`svg[data-spark]`).
CHART_JS = """
window.noxChartNames = window.noxChartNames || {};
const noxWithChart = (id, fn, tries = 100) => {
  const el = getElement(id);
  if (el && el.chart) return fn(el.chart);
  if (tries > 0) setTimeout(() => noxWithChart(id, fn, tries - 1), 50);
};
const noxSpark = (id, chart) => {
  const name = window.noxChartNames[id];
  if (!name) return;
  const series = chart.getOption().series;
  for (const svg of document.querySelectorAll(`svg[data-spark="${name}"]`)) {
    const a = series[0].data.slice(-60);
    const b = svg.dataset.sparkSum === "1" && series[1] ? series[1].data.slice(-60) : null;
    const values = a.map((p, i) => p[1] + (b && b[i] ? b[i][1] : 0));
    if (values.length < 2) continue;
    const top = Number(svg.dataset.sparkCeiling) || Math.max(...values, 1e-9);
    const step = 120 / 59, offset = 60 - values.length;
    const points = values.map((v, i) =>
      `${((offset + i) * step).toFixed(1)},${(27 - Math.min(1, Math.max(0, v / top)) * 26).toFixed(1)}`).join(" ");
    let line = svg.querySelector("polyline");
    if (!line) {
      line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", "currentColor");
      line.setAttribute("stroke-width", "1.5");
      svg.appendChild(line);
    }
    line.setAttribute("points", points);
  }
};
window.noxSeed = (seeds) => {
  for (const [id, seed] of Object.entries(seeds)) {
    window.noxChartNames[id] = seed.name;
    noxWithChart(id, (chart) => {
      const n = chart.getOption().series.length;
      chart.setOption({ series: Array.from({ length: n }, (_, i) => ({ data: seed.points.map((p) => [p[0], p[i + 1]]) })) });
      noxSpark(id, chart);
    });
  }
};
window.noxAppend = (updates, windowMs) => {
  for (const [id, point] of Object.entries(updates)) {
    noxWithChart(id, (chart) => {
      const t = point[0];
      const series = chart.getOption().series.map((s, i) => {
        const data = s.data;
        data.push([t, point[i + 1]]);
        while (data.length && data[0][0] < t - windowMs) data.shift();
        return { data };
      });
      chart.setOption({ series });
      noxSpark(id, chart);
    });
  }
};
"""

BYTES_AXIS = """(v) => { const u = ['B/s','KiB/s','MiB/s','GiB/s']; let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (i ? v.toFixed(1) : v.toFixed(0)) + ' ' + u[i]; }"""


def live_chart(names: list[str], *, unit: str) -> ui.echart:
    """An empty chart; the page seeds it with `noxSeed` and feeds it with `noxAppend`."""
    series: list[dict[str, Any]] = [
        {
            "name": name,
            "type": "line",
            "showSymbol": False,
            "smooth": False,
            "lineStyle": {"width": 1.5},
            "areaStyle": {"opacity": 0.12} if index == 0 else None,
            "data": [],
        }
        for index, name in enumerate(names)
    ]
    axis_label: dict[str, object] = {"color": "#94a3b8", "fontSize": 11}
    if unit == "bytes":
        axis_label[":formatter"] = BYTES_AXIS
    options = {
        "animation": False,
        "color": PALETTE,
        "grid": {"left": 56, "right": 12, "top": 28, "bottom": 24},
        "legend": {"top": 0, "right": 8, "itemWidth": 12, "itemHeight": 8, "textStyle": {"color": "#94a3b8"}},
        "tooltip": {"trigger": "axis"},
        "xAxis": {
            "type": "time",
            "splitNumber": 4,
            "axisLabel": {"color": "#94a3b8", "fontSize": 11, "hideOverlap": True},
            "splitLine": {"show": False},
        },
        "yAxis": {
            "type": "value",
            "min": 0,
            "max": 100 if unit == "percent" else None,
            "axisLabel": axis_label,
            "splitLine": {"lineStyle": {"color": "rgba(148,163,184,.18)"}},
        },
        "series": series,
    }
    return ui.echart(options).classes("w-full h-56")
