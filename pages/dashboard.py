"""`/`: the live dashboard. Everything on it comes from `DashboardFeed`; the page only assigns values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from nox_ui.app import Services
from nox_ui.components.charts import CHART_JS, live_chart
from nox_ui.components.format import format_bytes
from nox_ui.components.frame import frame
from nox_ui.components.live import CHART_SECONDS, DashboardFeed, View
from nox_ui.components.session import SessionGuard
from nox_ui.components.signals import ui_event
from nox_ui.components.theme import card
from nox_ui.metrics.host import host_facts
from nox_ui.plugins.spec import PluginUser
from nox_ui.roles import Principal

Setter = Callable[[Any], object]


def _set_level(element: ui.element) -> Setter:
    def apply(value: Any) -> None:
        element.classes(remove="nox-level-ok nox-level-warning nox-level-critical", add=f"nox-level-{value}")

    return apply


def _set_degraded(badge: ui.element) -> Setter:
    def apply(error: Any) -> None:
        badge.set_visibility(bool(error))
        badge.props(f'title="{str(error).replace(chr(34), chr(39))}"')

    return apply


class _Cards:
    """Builds the cards and remembers, per view key, how to apply a new value."""

    def __init__(self) -> None:
        self.setters: dict[str, Setter] = {}

    def apply(self, view: View) -> None:
        for key, value in view.items():
            setter = self.setters.get(key)
            if setter is not None:
                setter(value)

    def text(self, key: str, classes: str = "") -> ui.label:
        label = ui.label("—").classes(classes)
        self.setters[key] = label.set_text
        return label

    @staticmethod
    def spark(chart: str, *, ceiling: float | None = None, both_series: bool = False) -> None:
        """A sparkline of a live chart's last minute, drawn in the browser from the chart's own points."""
        attributes = f'data-spark="{chart}"' + (f' data-spark-ceiling="{ceiling}"' if ceiling else "")
        attributes += ' data-spark-sum="1"' if both_series else ""
        svg = f'<svg class="nox-spark" viewBox="0 0 120 28" preserveAspectRatio="none" {attributes}></svg>'
        ui.html(svg, sanitize=False).classes("nox-spark-box")

    def bar(self, key: str) -> None:
        # Two plain divs: an update is one style value, not a whole progress component.
        with ui.element("div").classes("nox-bar-track"):
            fill = ui.element("div").classes("nox-bar-fill nox-level-ok")
        self.setters[key] = lambda value: fill.style(f"width: {float(value) * 100:.1f}%")
        self.setters[key.removesuffix(".bar") + ".level"] = _set_level(fill)

    def header(self, title: str, icon: str, *, degraded: tuple[str, ...], spark: str | None = None) -> None:
        # `spark` names the live chart whose sent + received (or read + written) the sparkline sums
        """Icon, title, a warning icon per collector that can degrade this card, optional sparkline."""
        with ui.row().classes("items-center w-full no-wrap gap-2"):
            ui.icon(icon, size="xs").classes("nox-muted")
            ui.label(title).classes("text-subtitle2 nox-muted uppercase tracking-wide")
            ui.space()
            for key in degraded:
                badge = ui.icon("warning", size="xs").classes("text-warning").mark(f"degraded-{key}")
                badge.set_visibility(False)
                self.setters[f"degraded.{key}"] = _set_degraded(badge)
            if spark:
                self.spark(spark, both_series=True)

    def metric_card(self, key: str, title: str, icon: str, *, spark: str | None = None) -> ui.card:
        with card().classes("q-pa-md nox-metric-card") as box:
            self.header(title, icon, degraded=(key,))
            with ui.row().classes("items-end w-full no-wrap justify-between"):
                value = self.text(
                    f"{key}.value", "text-h4 text-weight-medium nox-value whitespace-nowrap"
                ).mark(f"{key}-value")
                self.setters[f"{key}.level"] = _set_level(value)
                if spark:
                    self.spark(spark, ceiling=100)
            detail = self.text(f"{key}.detail", "text-caption nox-muted").mark(f"{key}-detail")
            detail.classes("leading-tight")
        return box


def plugin_widgets(services: Services, principal: Principal) -> None:
    """The enabled plugins' dashboard widgets, one card each, redrawn when a plugin comes or goes. A widget
    that raises is replaced by a line saying so, and its plugin is marked failed (and withdrawn)."""
    plugins = services.plugins

    @ui.refreshable
    def widgets() -> None:
        found = plugins.widgets(principal)
        if not found:
            return
        with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 xl:grid-cols-3 gap-4 w-full"):
            for name, widget in found:
                with card().classes("q-pa-md").mark(f"widget-{name}"):
                    ui.label(widget.title).classes("text-subtitle2 nox-muted uppercase tracking-wide")
                    try:
                        widget.build(PluginUser.of(principal))
                    except (
                        Exception,
                        SystemExit,
                    ) as exc:  # the plugin's bug: it is withdrawn, the rest goes on
                        plugins.report_failure(name, f"widget {widget.title!r}", exc)
                        # Why, with the traceback, is for admins on /admin/plugins only.
                        ui.label("This widget failed; its plugin has been switched off.").classes(
                            "text-negative"
                        )

    widgets()
    ui_event(plugins.changed).subscribe(lambda _name: widgets.refresh())


def register(services: Services, guard: SessionGuard) -> None:
    feed = DashboardFeed(services.metrics, services.cache)

    @guard.page("/", title="Dashboard")
    def dashboard(principal: Principal) -> None:
        facts = host_facts(services.cache)
        view = feed.current_view()
        cards = _Cards()
        ui.add_head_html(f"<script>{CHART_JS}</script>")
        with frame(guard, principal, "Dashboard"):
            with card().classes("q-px-md q-py-sm w-full"):
                with ui.row().classes("items-center gap-x-6 gap-y-1 w-full"):
                    with ui.row().classes("items-center gap-2"):
                        ui.icon("dns").classes("text-primary")
                        ui.label(facts.hostname).classes("text-h6").mark("hostname")
                    for caption, value in (
                        ("OS", facts.os),
                        ("Kernel", facts.kernel),
                        ("CPU", f"{facts.cpu_model} · {facts.threads} CPUs"),
                        ("Memory", format_bytes(facts.memory_bytes)),
                    ):
                        with ui.row().classes("items-baseline gap-1"):
                            ui.label(caption).classes("text-caption nox-muted")
                            ui.label(value).classes("text-body2")
                    with ui.row().classes("items-baseline gap-1"):
                        ui.label("Up").classes("text-caption nox-muted")
                        cards.text("system.uptime", "text-body2").mark("uptime")
                    with ui.row().classes("items-baseline gap-1"):
                        ui.label("Processes").classes("text-caption nox-muted")
                        cards.text("system.processes", "text-body2")

            with ui.element("div").classes("grid grid-cols-1 sm:grid-cols-2 xl:grid-cols-4 gap-4 w-full"):
                with cards.metric_card("cpu", "CPU", "memory", spark="cpu"):
                    with ui.column().classes("w-full gap-1 q-mt-xs"):
                        cores = sorted(
                            (k.split(".")[1] for k in view if k.startswith("core.") and k.endswith(".bar")),
                            key=int,
                        )
                        for core in cores:
                            with ui.row().classes("items-center w-full no-wrap gap-2"):
                                ui.label(f"{core}").classes("text-caption nox-muted w-6 text-right")
                                with ui.element("div").classes("col"):
                                    cards.bar(f"core.{core}.bar")
                                cards.text(f"core.{core}.label", "text-caption w-10 text-right")
                cards.metric_card("mem", "Memory", "developer_board", spark="mem")
                cards.metric_card("load", "Load", "speed")
                cards.metric_card("swap", "Swap", "swap_horiz")

            with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 gap-4 w-full"):
                with card().classes("q-pa-md"):
                    cards.header("Disks", "storage", degraded=("disk", "diskio"), spark="disk")
                    mounts = sorted(k[5:-6] for k in view if k.startswith("disk.") and k.endswith(".value"))
                    for mount in mounts:
                        with ui.row().classes("items-center w-full no-wrap gap-3"):
                            ui.label(mount).classes("text-body2 text-weight-medium w-24 ellipsis")
                            with ui.element("div").classes("col"):
                                cards.bar(f"disk.{mount}.bar")
                            cards.text(f"disk.{mount}.value", "text-body2 w-10 text-right")
                        cards.text(f"disk.{mount}.detail", "text-caption nox-muted q-ml-xs")
                    for key in sorted(k for k in view if k.startswith("diskio.") and k.endswith(".detail")):
                        with ui.row().classes("items-baseline gap-2"):
                            ui.label(key.split(".")[1]).classes("text-caption text-weight-medium")
                            cards.text(key, "text-caption nox-muted")
                    if not mounts:
                        ui.label("No disks measured yet.").classes("nox-muted")
                with card().classes("q-pa-md"):
                    cards.header("Network", "lan", degraded=("net",), spark="net")
                    ifaces = sorted(k[4:-7] for k in view if k.startswith("net.") and k.endswith(".detail"))
                    for iface in ifaces:
                        with ui.row().classes("items-baseline w-full no-wrap gap-3"):
                            ui.label(iface).classes("text-body2 text-weight-medium w-24 ellipsis")
                            cards.text(f"net.{iface}.detail", "text-body2 nox-mono")
                    if not ifaces:
                        ui.label("Rates appear after the second sample.").classes("nox-muted")
                sensors = sorted(k[7:-6] for k in view if k.startswith("sensor.") and k.endswith(".value"))
                if sensors:  # most VMs and containers have none; then the card is left out
                    with card().classes("q-pa-md md:col-span-2"):
                        cards.header("Sensors", "thermostat", degraded=("sensors",))
                        with ui.element("div").classes(
                            "grid grid-cols-2 md:grid-cols-4 gap-x-6 gap-y-1 w-full"
                        ):
                            for sensor in sensors:
                                with ui.row().classes("items-baseline justify-between no-wrap gap-2"):
                                    ui.label(sensor).classes("text-body2 ellipsis")
                                    reading = cards.text(
                                        f"sensor.{sensor}.value", "text-body2 nox-mono nox-value"
                                    )
                                    cards.setters[f"sensor.{sensor}.level"] = _set_level(reading)

            charts: dict[str, ui.echart] = {}
            with ui.element("div").classes("grid grid-cols-1 lg:grid-cols-2 gap-4 w-full"):
                for name, title, series, unit in (
                    ("cpu", "CPU %", ["total", "user", "system", "iowait"], "percent"),
                    ("mem", "Memory %", ["memory", "swap"], "percent"),
                    ("net", "Network (all interfaces but lo)", ["received", "sent"], "bytes"),
                    ("disk", "Disk I/O (all disks)", ["read", "written"], "bytes"),
                ):
                    with card().classes("q-pa-sm"):
                        ui.label(title).classes("text-subtitle2 nox-muted q-px-sm")
                        charts[name] = live_chart(series, unit=unit)
                        charts[name].mark(f"chart-{name}").classes(f"nox-chart-{name}")

            plugin_widgets(services, principal)

        cards.apply(view)
        chart_ids = {name: chart.id for name, chart in charts.items()}
        seeds = {
            chart.id: {"name": name, "points": list(feed.charts[name])} for name, chart in charts.items()
        }
        ui.run_javascript(f"noxSeed({json.dumps(seeds)})")

        def on_update(changed: View, points: dict[str, list[float]]) -> None:
            cards.apply(changed)
            payload = {chart_ids[name]: point for name, point in points.items() if name in chart_ids}
            ui.run_javascript(f"noxAppend({json.dumps(payload)}, {CHART_SECONDS * 1000})")

        feed.updated.subscribe(on_update)
