"""One sampler per process: runs the collectors once per interval, however many browsers watch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loguru import logger

from nox_ui.metrics.collectors import Collector, Values
from nox_ui.metrics.series import MetricSpec


@dataclass(frozen=True)
class Sample:
    ts: float  # Unix seconds
    values: dict[str, float]
    duration: float  # seconds spent collecting


@dataclass
class CollectorHealth:
    ok: bool = True
    error: str = ""
    failures: int = 0  # consecutive
    errors_total: int = 0
    since: float = field(default_factory=time.time)


class Sampler:
    def __init__(self, collectors: Iterable[Collector], clock: Callable[[], float] = time.time) -> None:
        self.collectors = list(collectors)
        self.clock = clock
        self.health: dict[str, CollectorHealth] = {c.name: CollectorHealth() for c in self.collectors}
        self.last: Sample | None = None
        self.samples_taken = 0

    @property
    def specs(self) -> list[MetricSpec]:
        return [spec for collector in self.collectors for spec in collector.specs]

    def degraded(self) -> dict[str, str]:
        return {name: state.error for name, state in self.health.items() if not state.ok}

    def sample(self) -> Sample:
        started = time.perf_counter()
        now = self.clock()
        values: Values = {}
        for collector in self.collectors:
            state = self.health[collector.name]
            try:
                values.update(collector.collect(now))
            except Exception as exc:  # a broken collector must not stop the others
                state.failures += 1
                state.errors_total += 1
                if state.ok:
                    state.ok, state.since = False, now
                    logger.warning("collector {} degraded: {}: {}", collector.name, type(exc).__name__, exc)
                state.error = f"{type(exc).__name__}: {exc}"
                continue
            if not state.ok:
                logger.info("collector {} recovered after {} failed samples", collector.name, state.failures)
                state.ok, state.error, state.since = True, "", now
            state.failures = 0
        sample = Sample(ts=now, values=values, duration=time.perf_counter() - started)
        self.last = sample
        self.samples_taken += 1
        return sample
