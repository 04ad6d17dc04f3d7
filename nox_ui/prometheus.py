"""GET /metrics: the last sample in Prometheus text format. It never samples again; scraping is free."""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nox_ui.metrics.series import parse_series, series_name
from nox_ui.metrics.service import MetricsService

PREFIX = "nox_"


def prometheus_name(name: str) -> str:
    """`disk.read_bytes_per_s` → `nox_disk_read_bytes_per_second`."""
    flat = re.sub(r"[^a-zA-Z0-9_]", "_", name.replace("_per_s", "_per_second"))
    return PREFIX + flat


class SampleCollector(Collector):
    def __init__(self, metrics: MetricsService) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        sample = self.metrics.last
        families: dict[str, GaugeMetricFamily] = {}
        if sample is not None:
            for sid, value in sorted(sample.values.items()):
                name = series_name(sid)
                spec = self.metrics.specs.get(name)
                if spec is None:
                    continue
                family = families.get(name)
                if family is None:
                    family = GaugeMetricFamily(
                        prometheus_name(name), f"{spec.description} ({spec.unit})", labels=list(spec.labels)
                    )
                    families[name] = family
                _, labels = parse_series(sid)
                family.add_metric([labels.get(label, "") for label in spec.labels], value)
        yield from families.values()

        sampler = self.metrics.sampler
        yield GaugeMetricFamily(
            "nox_ui_connected_clients",
            "browser pages connected over the websocket",
            value=self.metrics.client_count(),
        )
        yield GaugeMetricFamily(
            "nox_ui_sample_duration_seconds",
            "time the last sample took to collect",
            value=sample.duration if sample else 0.0,
        )
        up = GaugeMetricFamily(
            "nox_ui_collector_up", "1 when the collector's last run succeeded", labels=["collector"]
        )
        errors = CounterMetricFamily(
            "nox_ui_collector_errors", "failed runs of the collector since start", labels=["collector"]
        )
        for name, state in sorted(sampler.health.items()):
            up.add_metric([name], 1.0 if state.ok else 0.0)
            errors.add_metric([name], state.errors_total)
        yield up
        yield errors


def build_registry(metrics: MetricsService) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleCollector(metrics))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
