"""The dashboard's view model, computed once per sample for every open dashboard.

The sampler publishes raw samples on `MetricsService.bus` (a core `Signal`). `DashboardFeed` subscribes
once per process, through the bridge to NiceGUI (`components/signals.py`), turns a sample into display strings and chart points, and re-publishes only
what changed on `feed.updated`. Each open page subscribes to that (NiceGUI drops the subscription
when the tab closes) and merely assigns the changed strings to its elements."""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any

from nicegui import Event

from nox_ui.cache import Cache
from nox_ui.components.format import format_bytes, format_duration, format_rate, level
from nox_ui.components.signals import ui_event
from nox_ui.metrics.host import host_facts
from nox_ui.metrics.sampler import Sample
from nox_ui.metrics.series import parse_series, series_name
from nox_ui.metrics.service import MetricsService

CHART_SECONDS = 300
View = dict[str, Any]
ChartPoints = dict[str, list[float]]

# Which collector feeds which card: a degraded collector greys out its cards only.
CARD_COLLECTORS = {
    "cpu": "cpu",
    "load": "cpu",
    "mem": "memory",
    "swap": "memory",
    "disk": "disk",
    "diskio": "diskio",
    "net": "network",
    "sensors": "sensors",
    "system": "system",
}


@functools.lru_cache(maxsize=4096)
def _split(sid: str) -> tuple[str, str]:
    """(name, value of the first label) of a series id; cached because ids repeat every sample."""
    name, labels = parse_series(sid)
    return name, next(iter(labels.values()), "")


def labelled(values: dict[str, float], name: str) -> dict[str, float]:
    """{label value: metric value} for every series of `name` (the metrics used here have one label)."""
    out = {}
    for sid, value in values.items():
        if sid.startswith(name) and series_name(sid) == name:
            out[_split(sid)[1]] = value
    return out


class DashboardFeed:
    def __init__(self, metrics: MetricsService, cache: Cache) -> None:
        self.metrics = metrics
        self.cache = cache  # the host facts
        self.updated: Event[View, ChartPoints] = Event()
        self.view: View = {}
        length = max(2, math.ceil(CHART_SECONDS / metrics.interval))
        self.charts: dict[str, deque[list[float]]] = {
            name: deque(maxlen=length) for name in ("cpu", "mem", "net", "disk")
        }
        ui_event(metrics.bus).subscribe(self._on_sample, unsubscribe_on_delete=False)

    @property
    def watchers(self) -> int:
        return len(self.updated.callbacks)

    def _on_sample(self, sample: Sample) -> None:
        points = self.chart_points(sample)
        for name, point in points.items():
            self.charts[name].append(point)
        if not self.watchers:  # nobody looks: keep the chart window, skip the strings
            self.view = {}
            return
        view = self.build_view(sample)
        changed = {key: value for key, value in view.items() if self.view.get(key) != value}
        self.view = view
        self.updated.emit(changed, points)

    def current_view(self) -> View:
        last = self.metrics.last
        if not self.view and last is not None:
            self.view = self.build_view(last)
        return self.view

    @staticmethod
    def chart_points(sample: Sample) -> ChartPoints:
        v = sample.values
        ms = round(sample.ts * 1000)
        rx = sum(val for iface, val in labelled(v, "net.rx_bytes_per_s").items() if iface != "lo")
        tx = sum(val for iface, val in labelled(v, "net.tx_bytes_per_s").items() if iface != "lo")
        reads = sum(labelled(v, "disk.read_bytes_per_s").values())
        writes = sum(labelled(v, "disk.write_bytes_per_s").values())
        points: ChartPoints = {}
        if "cpu.percent" in v:
            points["cpu"] = [
                ms,
                v["cpu.percent"],
                v.get("cpu.user_percent", 0.0),
                v.get("cpu.system_percent", 0.0),
                v.get("cpu.iowait_percent", 0.0),
            ]
        if "mem.used_percent" in v:
            points["mem"] = [ms, v["mem.used_percent"], v.get("swap.used_percent", 0.0)]
        points["net"] = [ms, rx, tx]
        points["disk"] = [ms, reads, writes]
        return points

    def build_view(self, sample: Sample) -> View:
        v = sample.values
        facts = host_facts(self.cache)
        view: View = {}
        degraded = self.metrics.sampler.degraded()
        for card, collector in CARD_COLLECTORS.items():
            view[f"degraded.{card}"] = degraded.get(collector, "")

        if "cpu.percent" in v:
            cpu = v["cpu.percent"]
            view["cpu.value"] = f"{cpu:.0f} %"
            view["cpu.level"] = level(cpu, 70, 90)
            view["cpu.detail"] = (
                f"user {v.get('cpu.user_percent', 0):.0f} % · system {v.get('cpu.system_percent', 0):.0f} % · "
                f"iowait {v.get('cpu.iowait_percent', 0):.0f} % · steal {v.get('cpu.steal_percent', 0):.0f} %"
            )
            for core, value in labelled(v, "cpu.core.percent").items():
                view[f"core.{core}.bar"] = round(value / 100, 3)
                view[f"core.{core}.label"] = f"{value:.0f} %"
        if "load.1" in v:
            per_core = v["load.1"] / max(1, facts.threads)
            view["load.value"] = f"{v['load.1']:.2f}"
            view["load.level"] = level(per_core, 1.0, 2.0)
            view["load.detail"] = (
                f"5 min {v['load.5']:.2f} · 15 min {v['load.15']:.2f} · {facts.threads} CPUs"
            )
        if "mem.used_percent" in v:
            view["mem.value"] = f"{v['mem.used_percent']:.0f} %"
            view["mem.level"] = level(v["mem.used_percent"], 80, 92)
            view["mem.detail"] = (
                f"{format_bytes(v['mem.used_bytes'])} of {format_bytes(v['mem.total_bytes'])} · "
                f"cache {format_bytes(v.get('mem.cached_bytes', 0))}"
            )
        if "swap.total_bytes" in v:
            if v["swap.total_bytes"] > 0:
                view["swap.value"] = f"{v['swap.used_percent']:.0f} %"
                view["swap.level"] = level(v["swap.used_percent"], 50, 80)
                view["swap.detail"] = (
                    f"{format_bytes(v['swap.used_bytes'])} of {format_bytes(v['swap.total_bytes'])}"
                )
            else:
                view["swap.value"] = "off"
                view["swap.level"] = "ok"
                view["swap.detail"] = "no swap space configured"
        used_bytes, total_bytes = labelled(v, "disk.used_bytes"), labelled(v, "disk.total_bytes")
        for mount, percent in labelled(v, "disk.used_percent").items():
            used, total = used_bytes.get(mount, 0), total_bytes.get(mount, 0)
            view[f"disk.{mount}.value"] = f"{percent:.0f} %"
            view[f"disk.{mount}.bar"] = round(percent / 100, 3)
            view[f"disk.{mount}.level"] = level(percent, 80, 92)
            view[f"disk.{mount}.detail"] = f"{format_bytes(used)} of {format_bytes(total)}"
        reads = labelled(v, "disk.read_bytes_per_s")
        writes = labelled(v, "disk.write_bytes_per_s")
        for disk in reads:
            view[f"diskio.{disk}.detail"] = (
                f"read {format_rate(reads[disk])} · write {format_rate(writes.get(disk, 0))}"
            )
        rx = labelled(v, "net.rx_bytes_per_s")
        tx = labelled(v, "net.tx_bytes_per_s")
        for iface in rx:
            if iface != "lo":
                view[f"net.{iface}.detail"] = f"↓ {format_rate(rx[iface])}  ↑ {format_rate(tx.get(iface, 0))}"
        for sid, value in v.items():
            if sid.startswith("sensor."):
                name, labels = parse_series(sid)
                label = f"{labels.get('chip', '')} {labels.get('sensor', '')}".strip()
                if name == "sensor.temperature_celsius":
                    view[f"sensor.{label}.value"] = f"{value:.0f} °C"
                    view[f"sensor.{label}.level"] = level(value, 75, 90)
                else:
                    view[f"sensor.{label}.value"] = f"{value:.0f} rpm"
        if "system.uptime_seconds" in v:
            view["system.uptime"] = format_duration(v["system.uptime_seconds"])
            view["system.processes"] = f"{v.get('system.processes', 0):.0f}"
        return view
