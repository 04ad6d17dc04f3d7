"""One sampler per process: runs the collectors once per interval, however many browsers watch.

`sample_off_loop` is what the running panel uses: each collector runs in a worker thread and the event
loop only awaits it, up to `timeout` seconds per collector. psutil's calls are synchronous and some can
hang (`disk_usage` on a dead NFS/CIFS mount): a collector that does not answer in time is marked
degraded, the others go on, and it is not started again while its earlier call is still running, so a
hung mount holds one thread however long it hangs. `sample` runs the collectors in the caller's thread
(tests, the bench)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

from loguru import logger

from nox_ui.metrics.collectors import Collector, Values
from nox_ui.metrics.series import MetricSpec

COLLECTOR_TIMEOUT = 2.0  # seconds one collector may take in the running panel before it counts as hung


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


class _Workers:
    """Daemon threads taking calls from one queue. A new thread starts only when none is idle (one is
    enough while collectors answer; a hung one keeps its thread). Daemon threads, unlike
    `ThreadPoolExecutor`'s, do not hold up the process's exit behind a call that never returns."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.started = 0

    def submit(self, func: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self.started += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self.started}", daemon=True).start()
        self._jobs.put((future, func, args))
        return future

    def _work(self) -> None:
        while True:
            future, func, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():  # cancelled while queued
                with self._lock:
                    self._idle += 1
                continue
            try:
                result, error = func(*args), None
            except BaseException as exc:  # handed to the waiting tick, which marks the collector
                result, error = None, exc
            # Idle before answering: the waiting tick submits the next call as soon as it has the answer.
            with self._lock:
                self._idle += 1
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
            del future, func, args, result, error


class Sampler:
    def __init__(
        self,
        collectors: Iterable[Collector],
        clock: Callable[[], float] = time.time,
        timeout: float = COLLECTOR_TIMEOUT,
    ) -> None:
        self.collectors = list(collectors)
        self.clock = clock
        self.timeout = timeout
        self.health: dict[str, CollectorHealth] = {c.name: CollectorHealth() for c in self.collectors}
        self.last: Sample | None = None
        self.samples_taken = 0
        self._workers = _Workers("collector")
        self._running: dict[str, tuple[float, Future[Any]]] = {}  # collector name: (started, its call)

    def add(self, collector: Collector) -> None:
        """Add a collector (a plugin enabled): sampled from the next tick on. The list is replaced, not
        changed in place, so a tick iterating the old one finishes undisturbed."""
        self.health[collector.name] = CollectorHealth()
        self.collectors = [*self.collectors, collector]

    def remove(self, name: str) -> None:
        """Stop sampling a collector (a plugin disabled); its series get no new values."""
        self.collectors = [c for c in self.collectors if c.name != name]
        self.health.pop(name, None)
        self._running.pop(name, None)

    @property
    def specs(self) -> list[MetricSpec]:
        return [spec for collector in self.collectors for spec in collector.specs]

    @property
    def threads(self) -> int:
        """Worker threads started so far: one, plus one per collector that ever hung."""
        return self._workers.started

    def degraded(self) -> dict[str, str]:
        return {name: state.error for name, state in self.health.items() if not state.ok}

    def sample(self) -> Sample:
        """Run every collector in this thread, one after the other."""
        started = time.perf_counter()
        now = self.clock()
        values: Values = {}
        for collector in self.collectors:
            try:
                got = collector.collect(now)
            except Exception as exc:  # a broken collector must not stop the others
                self._failed(collector.name, now, f"{type(exc).__name__}: {exc}")
                continue
            self._answered(collector.name, now, got, values)
        return self._done(now, values, started)

    async def sample_off_loop(self) -> Sample:
        """Run every collector in a worker thread, one after the other, each for at most `timeout`
        seconds; the event loop stays free meanwhile."""
        started = time.perf_counter()
        now = self.clock()
        values: Values = {}
        for collector in self.collectors:
            name = collector.name
            running = self._running.get(name)
            if running is not None and not running[1].done():
                self._failed(name, now, self._hung_message(now - running[0]))
                continue
            future = self._workers.submit(collector.collect, now)
            self._running[name] = (now, future)
            waiting = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({waiting}, timeout=self.timeout)
            if not done:  # hung: its call goes on in its thread; whatever it answers later is dropped
                waiting.add_done_callback(_drop)
                self._failed(name, now, self._hung_message(self.timeout))
                continue
            self._running.pop(name, None)  # gone already if the collector was removed meanwhile
            try:
                got = waiting.result()
            except Exception as exc:  # a broken collector must not stop the others
                self._failed(name, now, f"{type(exc).__name__}: {exc}")
                continue
            self._answered(name, now, got, values)
        return self._done(now, values, started)

    @staticmethod
    def _hung_message(seconds: float) -> str:
        return (
            f"no answer for {seconds:.3g} s (a hung mount or device?); "
            "not started again until its call returns"
        )

    def _failed(self, name: str, now: float, error: str) -> None:
        state = self.health.get(name)
        if state is None:  # removed while it ran (a plugin disabled): nothing to report
            return
        state.failures += 1
        state.errors_total += 1
        if state.ok:
            state.ok, state.since = False, now
            logger.warning("collector {} degraded: {}", name, error)
        state.error = error

    def _answered(self, name: str, now: float, got: Values, values: Values) -> None:
        state = self.health.get(name)
        if state is None:  # removed while it ran: its late values are not this sample's
            return
        values.update(got)
        if not state.ok:
            logger.info("collector {} recovered after {} failed samples", name, state.failures)
            state.ok, state.error, state.since = True, "", now
        state.failures = 0

    def _done(self, now: float, values: Values, started: float) -> Sample:
        sample = Sample(ts=now, values=values, duration=time.perf_counter() - started)
        self.last = sample
        self.samples_taken += 1
        return sample


def _drop(future: asyncio.Future[Any]) -> None:
    """Retrieve a late answer's outcome so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
