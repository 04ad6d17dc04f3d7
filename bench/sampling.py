"""(a) The cost of one sample: `Sampler(default_collectors()).sample()` against the floor, i.e. the
bare psutil calls that one sample makes (read from nox_ui/metrics/collectors.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import psutil

from bench.util import median


def make_floor(mounts: list[str], with_sensors: bool) -> Callable[[], None]:
    """The calls one steady-state sample makes, with nothing around them.

    The mount list is read once (the collector caches it for 60 s) and sensors are only read when
    this host has them (the collector looks for absent sensors once every 5 minutes)."""
    cpu_times = psutil.cpu_times
    getloadavg = os.getloadavg
    virtual_memory = psutil.virtual_memory
    swap_memory = psutil.swap_memory
    disk_usage = psutil.disk_usage
    disk_io_counters = psutil.disk_io_counters
    net_io_counters = psutil.net_io_counters
    pids = psutil.pids
    wall = time.time
    temperatures = getattr(psutil, "sensors_temperatures", None)
    fans = getattr(psutil, "sensors_fans", None)

    def floor() -> None:
        cpu_times(percpu=True)
        getloadavg()
        virtual_memory()
        swap_memory()
        for mount in mounts:
            try:  # the collector's own form, without a context manager's cost
                disk_usage(mount)
            except OSError:
                continue
        disk_io_counters(perdisk=True)
        net_io_counters(pernic=True)
        if with_sensors:
            if temperatures:
                temperatures()
            if fans:
                fans()
        wall()
        len(pids())

    return floor


def _time_batch(fn: Callable[[], Any], iterations: int) -> float:
    """Mean µs per call over one batch."""
    started = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - started) / iterations / 1000.0


def run(rounds: int = 9, batch_seconds: float = 0.6) -> dict[str, Any]:
    from nox_ui.metrics.collectors import DiskUsageCollector, SensorsCollector, default_collectors
    from nox_ui.metrics.sampler import Sampler

    sampler = Sampler(default_collectors())
    for _ in range(30):  # warm-up: first rates, mount list, the sensors look-up
        sampler.sample()
    disk = next(c for c in sampler.collectors if isinstance(c, DiskUsageCollector))
    sensors = next(c for c in sampler.collectors if isinstance(c, SensorsCollector))
    with_sensors = sensors._absent_since is None  # present: read every sample
    mounts = disk.mounts(time.time())
    floor = make_floor(mounts, with_sensors)
    for _ in range(30):
        floor()

    # Size each batch to ~batch_seconds of sampler time, then alternate which side goes first.
    one = _time_batch(sampler.sample, 50)
    iterations = max(50, int(batch_seconds * 1e6 / max(one, 1.0)))
    sampler_rounds: list[float] = []
    floor_rounds: list[float] = []
    for index in range(rounds):
        pair = [(sampler.sample, sampler_rounds), (floor, floor_rounds)]
        if index % 2:
            pair.reverse()
        for fn, out in pair:
            out.append(_time_batch(fn, iterations))
    sampler_us, floor_us = median(sampler_rounds), median(floor_rounds)
    return {
        "sampler_us": sampler_us,
        "floor_us": floor_us,
        "ratio": sampler_us / floor_us,
        "iterations_per_round": iterations,
        "rounds": rounds,
        "sampler_rounds_us": sampler_rounds,
        "floor_rounds_us": floor_rounds,
        "series_per_sample": len(sampler.last.values) if sampler.last else 0,
        "mounts": mounts,
        "sensors_present": with_sensors,
        "processes": len(psutil.pids()),
    }
