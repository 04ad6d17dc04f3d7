"""Sampling runs off the event loop: a collector that hangs (a dead NFS mount under `disk_usage`) is
marked degraded, the others' values still arrive, the loop keeps serving, and the hung collector is
not started again while its call is still running."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

from nox_ui.metrics.collectors import Collector, MemoryCollector, Values
from nox_ui.metrics.sampler import Sampler
from nox_ui.metrics.series import MetricSpec


class Stuck(Collector):
    """Blocks in `collect` until released, like `statvfs` on a mount whose server went away."""

    name = "stuck"
    specs: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("stuck.value", "count", "a test value", (), "stuck"),
    )

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self.calls = 0

    def collect(self, now: float) -> Values:
        self.calls += 1
        self.entered.set()
        self.release.wait(60)  # bounded so a broken sampler fails this test instead of hanging pytest
        self.returned.set()
        return {"stuck.value": 1.0}


class Counter(Collector):
    name = "counter"
    specs: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("counter.value", "count", "a test value", (), "counter"),
    )

    def __init__(self) -> None:
        self.calls = 0

    def collect(self, now: float) -> Values:
        self.calls += 1
        return {"counter.value": float(self.calls)}


async def _wait_in_thread(event: threading.Event) -> None:
    """Wait for a thread's event without blocking the loop (and fail instead of hanging forever)."""
    assert await asyncio.to_thread(event.wait, 60)


async def test_a_hung_collector_is_degraded_and_the_others_go_on() -> None:
    stuck, counter = Stuck(), Counter()
    sampler = Sampler([MemoryCollector(), stuck, counter], timeout=0.2)

    first = asyncio.create_task(sampler.sample_off_loop())
    # The loop runs this coroutine while the collector is blocked in its thread.
    await _wait_in_thread(stuck.entered)
    sample = await first

    assert sample.values["counter.value"] == 1.0
    assert "mem.used_bytes" in sample.values
    assert "stuck.value" not in sample.values
    degraded = sampler.degraded()
    assert list(degraded) == ["stuck"]
    assert "no answer" in degraded["stuck"] and "not started again" in degraded["stuck"]

    # Later ticks: the others keep arriving, the hung call is not started again, no thread piles up.
    threads = sampler.threads
    for expected in (2.0, 3.0, 4.0):
        later = await sampler.sample_off_loop()
        assert later.values["counter.value"] == expected
        assert "stuck" in sampler.degraded()
    assert stuck.calls == 1
    assert sampler.threads == threads

    # The mount comes back: once the old call has returned, the collector is asked again and recovers.
    stuck.release.set()
    await _wait_in_thread(stuck.returned)
    while stuck.calls == 1:  # the old call's thread hands back its result before the next start
        recovered = await sampler.sample_off_loop()
    assert recovered.values["stuck.value"] == 1.0
    assert sampler.degraded() == {}


async def test_a_failing_collector_off_the_loop_is_reported_like_before() -> None:
    class Broken(Counter):
        name = "broken"

        def collect(self, now: float) -> Values:
            raise OSError("sensor bus gone")

    sampler = Sampler([Broken(), Counter()])
    sample = await sampler.sample_off_loop()
    assert sample.values == {"counter.value": 1.0}
    assert sampler.degraded() == {"broken": "OSError: sensor bus gone"}
