"""Live ECharts: built once with the last minutes, then fed one point per sample on the client side,
so each update sends a few numbers instead of the whole series."""

from __future__ import annotations

from nicegui import ui

PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed"]

# Appends [ts, v1, v2, ...] to each chart's series and drops points older than the window.
CHART_JS = """
window.noxAppend = (updates, windowMs) => {
  for (const [id, point] of Object.entries(updates)) {
    const el = getElement(id);
    if (!el || !el.chart) continue;
    const option = el.chart.getOption();
    const t = point[0];
    const series = option.series.map((s, i) => {
      const data = s.data;
      data.push([t, point[i + 1]]);
      while (data.length && data[0][0] < t - windowMs) data.shift();
      return { data };
    });
    el.chart.setOption({ series });
  }
};
"""

BYTES_AXIS = """(v) => { const u = ['B/s','KiB/s','MiB/s','GiB/s']; let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (i ? v.toFixed(1) : v.toFixed(0)) + ' ' + u[i]; }"""


def live_chart(names: list[str], points: list[list[float]], *, unit: str) -> ui.echart:
    series = [
        {
            "name": name,
            "type": "line",
            "showSymbol": False,
            "smooth": False,
            "lineStyle": {"width": 1.5},
            "areaStyle": {"opacity": 0.12} if index == 0 else None,
            "data": [[p[0], p[index + 1]] for p in points],
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
