"""The metrics hub: drives the sampler from the event loop (the collectors run in worker threads, see
`sampler.py`), feeds history, and publishes each sample on one core `Signal`, `bus`, on the loop: the
alert engine listens to it, and the UI bridges it to the open pages (`components/live.py`).

The sampling loop runs under the supervisor as job "sampler" (each tick reports how it went; a crash
of the loop restarts it); history writes report as job "history". A write that fails (a full disk, a
database busy past its retries) keeps its minutes in RAM and tries them again with the next write, so
once the disk has room again every minute is stored, once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from nox_ui.db import retry_busy
from nox_ui.errors import NotFound
from nox_ui.metrics.collectors import Collector
from nox_ui.metrics.history import HistoryResult, HistoryStore
from nox_ui.metrics.sampler import Sample, Sampler
from nox_ui.metrics.series import MetricSpec, parse_series, series_id, series_name
from nox_ui.signals import Signal
from nox_ui.supervisor import Supervisor

Minutes = list[tuple[int, dict[str, tuple[float, float, float]]]]
# Unwritten minutes kept while history cannot be written (~15 KiB each for 60 series); past this the
# oldest are dropped, loudly, so a disk full for days cannot exhaust the memory.
MAX_UNWRITTEN_MINUTES = 6 * 60


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    description: str
    labels: tuple[str, ...]
    series: list[str]


class MetricsService:
    def __init__(
        self,
        sampler: Sampler,
        history: HistoryStore,
        interval: float,
        *,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.sampler = sampler
        self.history = history
        self.interval = interval
        self.supervisor = supervisor or Supervisor()
        self.bus: Signal[Sample] = Signal("metrics.bus")  # emitted on the event loop, once per sample
        self.specs: dict[str, MetricSpec] = {spec.name: spec for spec in sampler.specs}
        self.client_count: Callable[[], int] = lambda: 0  # set by the web layer
        self._task: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None
        self._unwritten: Minutes = []  # minutes a failed write left; tried again first
        self._current_json: tuple[Sample | None, bytes] | None = None

    # -- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.supervisor.watch("history")
        self.supervisor.task("sampler", self.run)

    async def stop(self) -> None:
        await self.supervisor.stop("sampler")
        flush = self._flush
        if flush is not None and not flush.done():
            try:
                await flush  # a write under way finishes (its thread could not be stopped anyway)
            except (asyncio.CancelledError, Exception):
                logger.debug("history flush cancelled at shutdown")
        if self._unwritten:
            # The last chance for minutes a failed write left: a new process starts with an empty ring.
            await self._write([])

    async def run(self) -> None:
        """The sampling loop (the supervisor's job "sampler"): one sample per interval, never a burst."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                self.publish(await self.sampler.sample_off_loop())
            except Exception as exc:  # the loop must survive anything a subscriber or the store does
                self.supervisor.report("sampler", exc)
            else:
                self.supervisor.report("sampler", None)
            next_tick += self.interval
            delay = next_tick - loop.time()
            if delay < 0:  # fell behind (suspended host, overloaded loop): skip, never burst
                next_tick = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def tick(self) -> Sample:
        """One sample taken in this thread and published (tests; the panel samples off the loop)."""
        sample = self.sampler.sample()
        self.publish(sample)
        return sample

    def publish(self, sample: Sample) -> None:
        self.history.add(sample)
        self.bus.emit(sample)
        # While a flush is still running, leave finished minutes in RAM: taking them now would drop them.
        if self._flush is None or self._flush.done():
            minutes = self.history.completed_minutes(sample.ts)
            if minutes:
                self._flush = asyncio.get_running_loop().create_task(
                    self._write(minutes), name="history flush"
                )

    async def _write(self, minutes: Minutes) -> None:
        batch = self._unwritten + minutes
        self._unwritten = []
        if not batch:
            return
        try:
            await asyncio.to_thread(retry_busy, lambda: self.history.write(batch))
        except Exception as exc:
            # Minutes before the store's write mark did reach the database (the error came after the
            # commit): only the others are kept, so none is written twice.
            written = self.history.written_until or 0
            kept = [minute for minute in batch if minute[0] >= written]
            if len(kept) > MAX_UNWRITTEN_MINUTES:
                logger.error(
                    "history: {} unwritten minutes dropped (at most {} are kept in memory)",
                    len(kept) - MAX_UNWRITTEN_MINUTES,
                    MAX_UNWRITTEN_MINUTES,
                )
                kept = kept[-MAX_UNWRITTEN_MINUTES:]
            self._unwritten = kept
            self.supervisor.report("history", exc)
        else:
            self.supervisor.report("history", None)

    def add_collector(self, collector: Collector) -> None:
        """A plugin's collector joins the sampler; its metrics become known to history, alert rules and
        /metrics (the same `specs` mapping they all read)."""
        for spec in collector.specs:
            self.specs[spec.name] = spec
        self.sampler.add(collector)

    def remove_collector(self, name: str) -> None:
        """Stop a plugin's collector. Its specs stay known, so stored history stays readable and rules on
        its metrics stay valid; the series simply go stale (and leave /metrics with the next sample)."""
        self.sampler.remove(name)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def last(self) -> Sample | None:
        return self.sampler.last

    def current_json(self) -> bytes:
        """The last sample as the JSON body of GET /api/v1/metrics/current, encoded once per sample."""
        sample = self.sampler.last
        if self._current_json is not None and self._current_json[0] is sample:
            return self._current_json[1]
        body = {
            "ts": sample.ts if sample else 0.0,
            "sample_duration_ms": round(sample.duration * 1000, 3) if sample else 0.0,
            "degraded": self.sampler.degraded(),
            # collectors keep full precision (Prometheus gets it); three decimals read better in JSON
            "values": {sid: round(value, 3) for sid, value in sample.values.items()} if sample else {},
        }
        encoded = json.dumps(body, separators=(",", ":")).encode()
        self._current_json = (sample, encoded)
        return encoded

    def running(self) -> bool:
        last = self.sampler.last
        return last is not None and time.time() - last.ts < max(5.0, 3 * self.interval)

    def names(self) -> list[MetricInfo]:
        current = self.last.values if self.last else {}
        by_name: dict[str, list[str]] = {}
        for sid in sorted(set(current) | set(self.history.ring.columns)):
            by_name.setdefault(series_name(sid), []).append(sid)
        return [
            MetricInfo(spec.name, spec.unit, spec.description, spec.labels, by_name.get(spec.name, []))
            for spec in self.specs.values()
        ]

    def resolve(self, metric: str) -> str:
        """Canonical series id for user input; NotFound for a metric nobody collects."""
        name, labels = parse_series(metric)
        if name not in self.specs:
            raise NotFound(f"unknown metric {name!r}; see /api/v1/metrics/names")
        return series_id(name, labels)

    def query(self, metric: str, since: float, until: float, step: int | None = None) -> HistoryResult:
        return self.history.query(self.resolve(metric), since, until, step)
