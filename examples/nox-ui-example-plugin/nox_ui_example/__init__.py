"""The Nox UI example plugin: the final code of the tutorial in docs/plugins.md.

It adds a metric (`example.wave`), a page with a live chart at /plugins/example/, a menu entry, a
dashboard widget, a notifier kind that appends alerts to a file, and the API route
GET /api/v1/plugins/example/status. From the panel it imports `nox_ui.plugin` only: the rest of
`nox_ui` is internal and changes between releases.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from nicegui import APIRouter, ui
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nox_ui.plugin import (
    AlertMessage,
    ApiRoutes,
    Collector,
    DeliveryError,
    FormField,
    MetricSpec,
    NavItem,
    NotifierKind,
    Page,
    PluginContext,
    PluginUser,
    SendContext,
    Widget,
    hookimpl,
)

METRIC = "example.wave"
PERIOD_SECONDS = 60.0  # one full wave a minute: slow to read, yet it moves at every sample
CHART_POINTS = 120  # two minutes of one-second points: enough to see the shape, cheap to redraw


# Step 1 of the tutorial: a package whose hooks say when it starts and stops.


@hookimpl
def startup(ctx: PluginContext) -> None:
    ctx.logger.info("example plugin started (amplitude {})", settings(ctx).amplitude)


@hookimpl
def shutdown(ctx: PluginContext) -> None:
    ctx.logger.info("example plugin stopped")


# Step 2 of the tutorial: a collector.


def wave(now: float, amplitude: int) -> float:
    """The wave at Unix time `now`: centred on 50, `amplitude` from trough to crest, so within 0..100."""
    return 50.0 + amplitude / 2 * math.sin(2 * math.pi * now / PERIOD_SECONDS)


class WaveCollector(Collector):
    name = "example"
    # `collector` must repeat the collector's name: the panel checks which collector owns a metric.
    specs = (MetricSpec(METRIC, "percent", "A sine wave made by the example plugin", collector="example"),)

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    def collect(self, now: float) -> dict[str, float]:
        # The setting is read at every sample, so an admin's change shows from the next one.
        return {METRIC: wave(now, settings(self.ctx).amplitude)}


@hookimpl
def metric_collectors(ctx: PluginContext) -> list[Collector]:
    return [WaveCollector(ctx)]


# Step 3 of the tutorial: a setting.


class ExampleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(
        "Example wave", min_length=1, max_length=60, description="Heading of the example page."
    )
    amplitude: int = Field(
        100,
        ge=1,
        le=100,
        description="How far the wave swings around 50, trough to crest (100: from 0 to 100).",
    )


@hookimpl
def settings_schema() -> type[BaseModel]:
    return ExampleSettings


def settings(ctx: PluginContext) -> ExampleSettings:
    # ctx.settings is typed as any pydantic model; it is always an instance of the one declared above.
    return cast(ExampleSettings, ctx.settings)


def shown(value: float | None) -> str:
    return "no sample yet" if value is None else f"{value:.1f} %"


# Step 4 of the tutorial: a page with a live chart.


@hookimpl
def register_pages(ctx: PluginContext) -> list[Page]:
    def build(user: PluginUser) -> None:
        ui.label(settings(ctx).title).classes("text-h5").mark("example-title")
        value = ui.label(shown(ctx.metrics.value(METRIC))).classes("text-h4").mark("example-value")
        chart = (
            ui.echart(
                {
                    "animation": False,
                    "grid": {"left": 40, "right": 16, "top": 16, "bottom": 24},
                    "tooltip": {"trigger": "axis"},
                    "xAxis": {"type": "time"},
                    "yAxis": {"type": "value", "min": 0, "max": 100},
                    "series": [{"name": METRIC, "type": "line", "showSymbol": False, "data": []}],
                }
            )
            .classes("w-full h-64")
            .mark("example-chart")
        )
        points: list[list[float]] = chart.options["series"][0]["data"]

        def tick() -> None:
            current = ctx.metrics.value(METRIC)
            value.set_text(shown(current))
            if current is None:
                return
            points.append([time.time() * 1000, current])  # echarts' time axis counts milliseconds
            del points[:-CHART_POINTS]
            chart.update()

        # Made inside the page, the timer belongs to it and is deleted when the tab closes.
        ui.timer(1.0, tick)

    return [Page("/", build, title="Example", role="viewer")]


# Step 5 of the tutorial: a nav item.


@hookimpl
def nav_items() -> list[NavItem]:
    return [NavItem("Example", "/plugins/example/", icon="waves", role="viewer")]


# Step 6 of the tutorial: a dashboard widget.


@hookimpl
def dashboard_widgets(ctx: PluginContext) -> list[Widget]:
    def build(user: PluginUser) -> None:
        label = ui.label(shown(ctx.metrics.value(METRIC))).classes("text-h4").mark("example-widget-value")
        ui.timer(1.0, lambda: label.set_text(shown(ctx.metrics.value(METRIC))))

    return [Widget("Example wave", build, role="viewer")]


# Step 7 of the tutorial: a notifier kind.

PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    file_name: str = Field("alerts.log", description="File in the plugin's data folder that receives alerts.")

    @field_validator("file_name")
    @classmethod
    def _plain(cls, value: str) -> str:
        # A plain name keeps every write inside the plugin's own folder.
        if not PLAIN_NAME.match(value) or ".." in value:
            raise ValueError(
                "a plain file name such as alerts.log: letters, digits, '.', '_', '-'; no '/' or '..'"
            )
        return value


class FileKind(NotifierKind):
    name = "example-file"
    label = "File (example plugin)"
    config_model = FileConfig
    config_doc = '{"file_name": "alerts.log"?}'
    fields = (
        FormField(
            "file_name",
            "File name",
            placeholder="alerts.log",
            help="Written in DATA_DIR/plugin-data/example, one JSON line per message.",
        ),
    )

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        path = self.folder / str(config.get("file_name", "alerts.log"))
        line = json.dumps({"event": context.event, **message.payload()})
        try:
            # File I/O in a worker thread: the event loop never waits for the disk.
            await asyncio.to_thread(append_line, path, line)
        except OSError as exc:
            raise DeliveryError(f"cannot write {path.name}: {exc.strerror or exc}") from None


def append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")


@hookimpl
def notifier_kinds(ctx: PluginContext) -> list[NotifierKind]:
    # Made here, not at import: the kind needs this plugin's data folder from ctx.
    return [FileKind(ctx.data_dir)]


# Step 8 of the tutorial: API routes.


class ExampleStatus(BaseModel):
    value: float | None
    title: str


@hookimpl
def api_routes(ctx: PluginContext) -> ApiRoutes:
    # NiceGUI's APIRouter is FastAPI's (plus a page decorator, unused here).
    router = APIRouter()

    @router.get("/status")
    def status() -> ExampleStatus:
        return ExampleStatus(value=ctx.metrics.value(METRIC), title=settings(ctx).title)

    return ApiRoutes(router, role="viewer")
