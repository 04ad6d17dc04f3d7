"""`/history`: pick series and a range; the store picks the tier (1 s, 1 min, 1 h) from the range.
Zooming into the chart re-queries the zoomed range, so detail grows as the range shrinks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.charts import BYTES_AXIS, PALETTE
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard
from nox_ui.components.theme import card
from nox_ui.errors import Invalid, NoxError
from nox_ui.metrics.history import HistoryResult
from nox_ui.parsing import parse_time
from nox_ui.roles import Principal

RANGES = {
    "15 min": 900,
    "1 h": 3600,
    "6 h": 6 * 3600,
    "24 h": 86400,
    "7 d": 7 * 86400,
    "30 d": 30 * 86400,
    "1 y": 365 * 86400,
}
DEFAULT_SERIES = ["cpu.percent", "mem.used_percent"]


def _axis_for(unit: str) -> dict[str, Any]:
    label: dict[str, Any] = {"color": "#94a3b8", "fontSize": 11}
    if unit in {"bytes", "bytes_per_second"}:
        label[":formatter"] = (
            BYTES_AXIS.replace("'B/s','KiB/s','MiB/s','GiB/s'", "'B','KiB','MiB','GiB'")
            if unit == "bytes"
            else BYTES_AXIS
        )
    axis: dict[str, Any] = {
        "type": "value",
        "name": unit.replace("_", " "),
        "axisLabel": label,
        "nameTextStyle": {"color": "#94a3b8"},
        "splitLine": {"lineStyle": {"color": "rgba(148,163,184,.18)"}},
    }
    if unit == "percent":
        axis.update(min=0, max=100)
    return axis


def chart_options(
    results: list[HistoryResult], units: dict[str, str], since: float, until: float
) -> dict[str, Any]:
    axes: list[str] = []
    series: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        unit = units.get(result.metric, "")
        if unit not in axes:
            axes.append(unit)
        axis = min(axes.index(unit), 1)
        color = PALETTE[index % len(PALETTE)]
        series.append(
            {
                "name": result.metric,
                "type": "line",
                "showSymbol": False,
                "yAxisIndex": axis,
                "lineStyle": {"width": 1.5, "color": color},
                "itemStyle": {"color": color},
                "data": [[ts * 1000, avg] for ts, avg, _, _ in result.points],
            }
        )
        if len(results) == 1:  # one series: show its min-max band under the average
            band = {
                "type": "line",
                "showSymbol": False,
                "stack": "band",
                "lineStyle": {"opacity": 0},
                "yAxisIndex": axis,
                "tooltip": {"show": False},
            }
            series.append(
                {**band, "name": "min", "data": [[ts * 1000, low] for ts, _, low, _ in result.points]}
            )
            series.append(
                {
                    **band,
                    "name": "max",
                    "areaStyle": {"color": color, "opacity": 0.15},
                    "data": [[ts * 1000, high - low] for ts, _, low, high in result.points],
                }
            )
    return {
        "animation": False,
        "grid": {"left": 64, "right": 64, "top": 40, "bottom": 70},
        "legend": {"top": 0, "textStyle": {"color": "#94a3b8"}, "data": [r.metric for r in results]},
        "tooltip": {"trigger": "axis"},
        # the whole asked-for range, so a gap in the data shows as a gap, not as a zoom
        "xAxis": {
            "type": "time",
            "min": since * 1000,
            "max": until * 1000,
            "axisLabel": {"color": "#94a3b8", "hideOverlap": True},
        },
        "yAxis": [_axis_for(unit) for unit in axes[:2]] or [{"type": "value"}],
        "dataZoom": [{"type": "inside"}, {"type": "slider", "height": 22, "bottom": 12}],
        "series": series,
    }


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/history", title="History")
    def history(principal: Principal) -> None:
        infos = services.metrics.names()
        units = {sid: info.unit for info in infos for sid in info.series}
        options = sorted(units)
        state: dict[str, float] = {"until": time.time(), "span": 3600.0}

        async def load() -> None:
            chosen = [sid for sid in (picker.value or []) if sid in units][:6]
            if not chosen:
                status.set_text("Pick at least one series.")
                return
            since, until = state["until"] - state["span"], state["until"]
            try:
                answers = [await run.io_bound(services.metrics.query, sid, since, until) for sid in chosen]
            except NoxError as exc:
                ui.notify(exc.message, type="negative")
                return
            results = [answer for answer in answers if answer is not None]
            if len(results) < len(answers):  # None: the app is shutting down
                return
            chart.options.clear()
            chart.options.update(chart_options(results, units, since, until))
            chart.update()
            first = results[0]
            points = sum(len(r.points) for r in results)
            status.set_text(
                f"{_fmt(since)} → {_fmt(until)} · tier: {first.tier} · one point per {first.step} s · {points} points"
                + ("" if points else " · nothing recorded in this range yet")
            )

        async def pick_range(seconds: int) -> None:
            state["span"], state["until"] = float(seconds), time.time()
            await load()

        async def apply_custom() -> None:
            try:
                since = parse_time(start.value, "start")
                until = parse_time(end.value, "end")
            except Invalid:
                since = until = None
            if since is None or until is None:
                ui.notify("Enter both times as YYYY-MM-DD HH:MM (UTC).", type="warning")
                return
            if since >= until:
                ui.notify("The start must be before the end.", type="warning")
                return
            state["span"], state["until"] = until - since, until
            await load()

        async def on_zoom(event: Any) -> None:
            batch = (event.args or {}).get("batch") or [event.args or {}]
            zoom = batch[0]
            low, high = float(zoom.get("start", 0)), float(zoom.get("end", 100))
            if high - low >= 99.9:
                return
            since = state["until"] - state["span"]
            state["until"], state["span"] = (
                since + state["span"] * high / 100,
                max(60.0, state["span"] * (high - low) / 100),
            )
            await load()

        with frame(guard, principal, "History"):
            with card().classes("q-pa-md w-full gap-3"):
                with ui.row().classes("items-end w-full gap-3"):
                    picker = (
                        ui.select(
                            options,
                            value=[s for s in DEFAULT_SERIES if s in units],
                            multiple=True,
                            label="Series",
                            with_input=True,
                            on_change=load,
                        )
                        .props("use-chips outlined dense")
                        .classes("col-grow min-w-[260px]")
                        .mark("series")
                    )
                    with ui.button_group().props("outline"):
                        for label, seconds in RANGES.items():
                            ui.button(label, on_click=lambda s=seconds: pick_range(s)).props(
                                "outline dense"
                            ).classes("q-px-sm").mark(f"range-{label}")
                with ui.row().classes("items-end gap-3"):
                    start = ui.input("From (UTC)", placeholder="2026-11-01 00:00").props("outlined dense")
                    end = ui.input("To (UTC)", placeholder="2026-11-02 00:00").props("outlined dense")
                    ui.button("Show", on_click=apply_custom).props("unelevated color=primary")
                    ui.label("Drag on the chart or the slider to zoom; the finer tier loads itself.").classes(
                        "text-caption nox-muted"
                    )
            with card().classes("q-pa-sm w-full"):
                status = ui.label("").classes("text-caption nox-muted q-px-sm").mark("history-status")
                chart = ui.echart({"series": []}).classes("w-full h-[420px]").mark("history-chart")
                chart.on("chart:datazoom", on_zoom, throttle=0.5)
        ui.timer(0.05, load, once=True)


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
