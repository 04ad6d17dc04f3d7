"""GET /metrics: the last sample in Prometheus text format. It never samples again; scraping is free."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nox_ui.metrics.series import parse_series, series_name
from nox_ui.metrics.service import MetricsService

if TYPE_CHECKING:
    from nox_ui.cache import Cache
    from nox_ui.supervisor import Supervisor

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


class CacheCollector(Collector):
    """The cache's figures per namespace: this process's hits and misses, entries and bytes now."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace"]
        hits = CounterMetricFamily("nox_cache_hits", "cache lookups answered from the cache", labels=labels)
        misses = CounterMetricFamily("nox_cache_misses", "cache lookups that had to compute", labels=labels)
        entries = GaugeMetricFamily("nox_cache_entries", "unexpired entries in the cache", labels=labels)
        size = GaugeMetricFamily("nox_cache_bytes", "bytes the cache's entries take", labels=labels)
        bypassed = GaugeMetricFamily(
            "nox_cache_bypassed", "1 while the cache is unusable (values computed directly)", labels=labels
        )
        for stats in self.cache.stats():
            hits.add_metric([stats.namespace], stats.hits)
            misses.add_metric([stats.namespace], stats.misses)
            entries.add_metric([stats.namespace], stats.entries)
            size.add_metric([stats.namespace], stats.bytes)
            bypassed.add_metric([stats.namespace], 1.0 if stats.state == "bypassed" else 0.0)
        yield from (hits, misses, entries, size, bypassed)


class JobCollector(Collector):
    """The supervisor's background jobs. The label is `name`, not `job`: Prometheus sets `job` on every
    scraped series itself (and would rename ours to `exported_job`)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        labels = ["name"]
        up = GaugeMetricFamily("nox_job_up", "1 while the background job runs without failing", labels=labels)
        failing = GaugeMetricFamily("nox_job_failing", "1 while the background job is failing", labels=labels)
        restarts = CounterMetricFamily(
            "nox_job_restarts", "times the job was started again after it crashed", labels=labels
        )
        failures = CounterMetricFamily("nox_job_failures", "failed rounds or runs of the job", labels=labels)
        last_ok = GaugeMetricFamily(
            "nox_job_last_success_timestamp_seconds", "when the job last reported success", labels=labels
        )
        for state in self.supervisor.states():
            up.add_metric([state.name], 1.0 if state.status == "running" else 0.0)
            failing.add_metric([state.name], 1.0 if state.status == "failing" else 0.0)
            restarts.add_metric([state.name], state.restarts)
            failures.add_metric([state.name], state.failures)
            if state.last_ok is not None:
                last_ok.add_metric([state.name], state.last_ok)
        yield from (up, failing, restarts, failures, last_ok)


def build_registry(
    metrics: MetricsService, cache: Cache | None = None, jobs: Supervisor | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleCollector(metrics))
    if cache is not None:
        registry.register(CacheCollector(cache))
    if jobs is not None:
        registry.register(JobCollector(jobs))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
