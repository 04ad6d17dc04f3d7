"""History tiers on a real SQLite file: 1-second points in RAM, minute and hour rollups in the database,
batched writes, pruning, range queries with their tier and step, the disk cache, and restarts."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from sqlalchemy import event, text

from nox_ui.app import Services
from nox_ui.cache import Cache
from nox_ui.errors import Invalid
from nox_ui.metrics.collectors import Collector, Values
from nox_ui.metrics.history import DAY, HOUR, MAX_POINTS, MINUTE, HistoryStore
from nox_ui.metrics.sampler import Sample, Sampler
from nox_ui.metrics.service import MetricsService

CPU = "cpu.percent"
DISK = 'disk.used_percent{mount="/"}'


@pytest.fixture
def store(services: Services, tmp_path: Path) -> Iterator[HistoryStore]:
    cache = Cache(tmp_path / "history-cache")
    yield HistoryStore(services.db, cache)
    cache.close()


def recent_hour(hours_ago: int = 2) -> int:
    """An hour boundary close to now: older rows would fall to the retention prune on the first write."""
    return (int(time.time()) // HOUR - hours_ago) * HOUR


def feed(store: HistoryStore, start: int, seconds: int, value: Any = None) -> None:
    """One sample per second from `start`; cpu.percent is a ramp (its offset in seconds), disk is flat."""
    for i in range(seconds):
        ts = start + i
        cpu = float(ts - start) if value is None else value(ts)
        store.add(Sample(ts=float(ts), values={CPU: cpu, DISK: 42.0}, duration=0.001))


def rows(services: Services, table: str) -> list[tuple[str, int, float, float, float]]:
    with services.db.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    f"SELECT s.key, t.ts, t.avg, t.min, t.max FROM {table} t "
                    "JOIN metric_series s ON s.id = t.series_id ORDER BY s.key, t.ts"
                )
            )
        ]


class InsertCounter:
    def __init__(self, services: Services) -> None:
        self.statements: list[str] = []
        event.listen(services.db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            self.statements.append(statement)

    def into(self, table: str) -> int:
        return sum(1 for s in self.statements if f"INTO {table} " in s)


# -- the RAM tier ----------------------------------------------------------------------------------


def test_a_recent_range_comes_from_ram_at_one_second(store: HistoryStore) -> None:
    t0 = int(time.time()) - HOUR
    feed(store, t0, HOUR)  # a full ring: the last hour at one second

    result = store.query(CPU, t0 + 1800, t0 + 1800 + 15 * MINUTE)
    assert (result.metric, result.tier, result.step) == (CPU, "second", 1)
    assert len(result.points) == 900
    assert result.points[0] == (t0 + 1800, 1800.0, 1800.0, 1800.0)
    assert result.points[-1] == (t0 + 2699, 2699.0, 2699.0, 2699.0)
    assert [p[0] for p in result.points] == list(range(t0 + 1800, t0 + 2700))

    # The whole hour is 3600 points: downsampled to at most MAX_POINTS, each keeping avg/min/max.
    hour = store.query(CPU, t0, t0 + HOUR)
    assert hour.tier == "second" and hour.step == 4
    assert len(hour.points) == 900 <= MAX_POINTS
    for k, (ts, avg, low, high) in enumerate(hour.points):
        assert ts == t0 + 4 * k
        assert (avg, low, high) == (4 * k + 1.5, 4 * k, 4 * k + 3)

    # A coarser step on request; another series is not mixed in.
    coarse = store.query(CPU, t0, t0 + HOUR, step=MINUTE)
    assert coarse.step == MINUTE and len(coarse.points) == 60
    assert coarse.points[10] == (t0 + 600, 629.5, 600.0, 659.0)
    assert {p[1:] for p in store.query(DISK, t0, t0 + HOUR).points} == {(42.0, 42.0, 42.0)}
    assert store.query("cpu.nothing", t0, t0 + HOUR).points == []


def test_the_ring_keeps_the_last_hour_after_wrapping(store: HistoryStore) -> None:
    t0 = int(time.time()) - HOUR - 400
    feed(store, t0, HOUR + 400)
    assert store.ring.oldest == t0 + 400
    result = store.query(CPU, t0 + HOUR - 200, t0 + HOUR + 400)
    assert result.tier == "second"
    assert [p[1] for p in result.points] == [float(v) for v in range(HOUR - 200, HOUR + 400)]
    # The overwritten first 400 seconds are gone from RAM: no stale value comes back from a reused slot.
    early = store.query(CPU, t0, t0 + 600)
    assert [p[1] for p in early.points] == [float(v) for v in range(400, 600)]


def test_a_series_that_appears_later_has_no_invented_points(store: HistoryStore) -> None:
    t0 = int(time.time()) - 120
    for i in range(120):
        values = {CPU: 1.0} | ({DISK: 5.0} if i >= 100 else {})
        store.add(Sample(ts=float(t0 + i), values=values, duration=0))
    points = store.query(DISK, t0, t0 + 120).points
    assert [p[0] for p in points] == list(range(t0 + 100, t0 + 120))


def test_after_a_restart_the_last_hour_joins_stored_minutes_and_fresh_seconds(
    store: HistoryStore, services: Services, tmp_path: Path
) -> None:
    start = int(time.time()) // MINUTE * MINUTE - 50 * MINUTE
    feed(store, start, 30 * MINUTE, value=lambda ts: 10.0)
    store.write(store.completed_minutes(start + 30 * MINUTE))

    restarted = HistoryStore(services.db, Cache(tmp_path / "cache-after-restart"))
    try:
        feed(restarted, start + 30 * MINUTE, 20 * MINUTE - 1, value=lambda ts: 90.0)
        result = restarted.query(CPU, start, start + 50 * MINUTE)
        assert result.tier == "second"
        old = [p for p in result.points if p[0] < start + 30 * MINUTE]
        new = [p for p in result.points if p[0] >= start + 30 * MINUTE]
        assert [p[0] for p in old] == [start + k * MINUTE for k in range(30)]  # one point per stored minute
        assert {p[1:] for p in old} == {(10.0, 10.0, 10.0)}
        assert len(new) >= 290 and {p[1:] for p in new} == {(90.0, 90.0, 90.0)}
        assert [p[0] for p in result.points] == sorted({p[0] for p in result.points})
    finally:
        restarted.cache.close()


# -- minute and hour rollups -------------------------------------------------------------------------


def test_finished_minutes_are_written_in_one_batch_with_avg_min_max(
    store: HistoryStore, services: Services
) -> None:
    m0 = recent_hour(1) + 10 * MINUTE
    feed(store, m0, 5 * MINUTE + 30)  # five full minutes and half of a sixth
    inserts = InsertCounter(services)

    minutes = store.completed_minutes(m0 + 5 * MINUTE + 30)
    assert [start for start, _ in minutes] == [m0 + k * MINUTE for k in range(5)]
    assert store.completed_minutes(m0 + 5 * MINUTE + 31) == []  # each minute is handed out once
    store.write(minutes)

    assert inserts.into("metric_minute") == 1  # one statement for the batch, not one per minute or sample
    stored = rows(services, "metric_minute")
    assert len(stored) == 5 * 2  # five minutes x two series; never a row per second
    cpu = [r for r in stored if r[0] == CPU]
    for k, (_key, ts, avg, low, high) in enumerate(cpu):
        assert ts == m0 + k * MINUTE
        assert (avg, low, high) == (60 * k + 29.5, 60 * k, 60 * k + 59)
    assert {r[2:] for r in stored if r[0] == DISK} == {(42.0, 42.0, 42.0)}

    # The half minute is written once it is over.
    feed(store, m0 + 5 * MINUTE + 30, 40, value=lambda ts: 1000.0)
    later = store.completed_minutes(m0 + 6 * MINUTE + 10)
    assert [start for start, _ in later] == [m0 + 5 * MINUTE]
    store.write(later)
    last = rows(services, "metric_minute")[len(cpu) - 1 + 1]
    assert last[:2] == (CPU, m0 + 5 * MINUTE)
    assert last[2:] == ((sum(range(300, 330)) + 30 * 1000.0) / 60, 300.0, 1000.0)


def test_an_hour_is_rolled_up_once_it_is_over(store: HistoryStore, services: Services) -> None:
    h = recent_hour(2)
    feed(store, h - 5 * MINUTE, 3 * MINUTE, value=lambda ts: float(ts - h))
    store.write(store.completed_minutes(h - 2 * MINUTE))
    assert len(rows(services, "metric_minute")) == 3 * 2
    assert rows(services, "metric_hour") == []  # the hour is still going

    feed(store, h - 2 * MINUTE, 3 * MINUTE, value=lambda ts: float(ts - h))
    store.write(store.completed_minutes(h + MINUTE))
    hour = [r for r in rows(services, "metric_hour") if r[0] == CPU]
    assert len(hour) == 1
    _key, ts, avg, low, high = hour[0]
    # The five minutes h-5min … h-1min; the minute starting at h belongs to the next hour.
    assert ts == h - HOUR
    assert avg == pytest.approx(sum(range(-300, 0)) / 300)
    assert (low, high) == (-300.0, -1.0)
    assert [r[1] for r in rows(services, "metric_minute") if r[0] == CPU][-1] == h


def test_prune_drops_rows_past_retention(store: HistoryStore, services: Services) -> None:
    now = time.time()
    old_minute = int(now - 31 * DAY) // MINUTE * MINUTE
    new_minute = int(now - 29 * DAY) // MINUTE * MINUTE
    old_hour = int(now - 366 * DAY) // HOUR * HOUR
    new_hour = int(now - 300 * DAY) // HOUR * HOUR
    with services.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO metric_series (id, key) VALUES (1, 'cpu.percent')"))
        for table, ts in (
            ("metric_minute", old_minute),
            ("metric_minute", new_minute),
            ("metric_hour", old_hour),
            ("metric_hour", new_hour),
        ):
            conn.execute(
                text(f"INSERT INTO {table} (series_id, ts, avg, min, max) VALUES (1, :ts, 1, 1, 1)"),
                {"ts": ts},
            )
    store.prune(now)
    assert [r[1] for r in rows(services, "metric_minute")] == [new_minute]
    assert [r[1] for r in rows(services, "metric_hour")] == [new_hour]


def test_a_restart_never_writes_a_minute_or_an_hour_twice(
    store: HistoryStore, services: Services, tmp_path: Path
) -> None:
    h = recent_hour(2)
    feed(store, h - 3 * MINUTE, 3 * MINUTE + 10)
    store.write(store.completed_minutes(h + 10))
    before_minutes = rows(services, "metric_minute")
    before_hours = rows(services, "metric_hour")
    assert [r[1] for r in before_minutes if r[0] == CPU] == [h - 180, h - 120, h - 60]
    assert len(before_hours) == 2

    again = HistoryStore(services.db, Cache(tmp_path / "cache-after-restart"))
    try:
        # Samples from inside minutes already stored (a clock step back, a quick restart) …
        feed(again, h - 100, 250)
        minutes = again.completed_minutes(h + 150)
        assert [start for start, _ in minutes] == [h, h + 60]
        again.write(minutes)  # … and no duplicate-key error, no second hour row
        after = rows(services, "metric_minute")
        assert [r[1] for r in after if r[0] == CPU] == [h - 180, h - 120, h - 60, h, h + 60]
        assert after[:3] == before_minutes[:3]
        assert rows(services, "metric_hour") == before_hours
    finally:
        again.cache.close()


# -- the service drives the writes ------------------------------------------------------------------


class Steady(Collector):
    name = "steady"

    def collect(self, now: float) -> Values:
        return {CPU: 10.0}


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def flush_done(metrics: MetricsService) -> bool:
    return metrics._flush is None or metrics._flush.done()


async def test_the_running_service_writes_one_batch_per_finished_minute(
    store: HistoryStore, services: Services
) -> None:
    m0 = recent_hour(1)
    clock = FakeClock(m0)
    metrics = MetricsService(Sampler([Steady()], clock=clock), store, interval=1.0)
    calls: list[list[int]] = []
    real_write = store.write

    def write(minutes: list[tuple[int, dict[str, tuple[float, float, float]]]]) -> None:
        calls.append([m for m, _ in minutes])
        real_write(minutes)

    store.write = write  # type: ignore[method-assign]
    try:
        for second in range(3 * MINUTE + 5):
            clock.now = m0 + second
            metrics.tick()
            await wait_for(lambda: flush_done(metrics))
    finally:
        await metrics.stop()
    assert calls == [[m0], [m0 + 60], [m0 + 120]]  # 185 samples, three writes
    assert [(r[1], r[2]) for r in rows(services, "metric_minute")] == [
        (m0, 10.0),
        (m0 + 60, 10.0),
        (m0 + 120, 10.0),
    ]


async def test_minutes_that_finish_during_a_slow_write_come_in_the_next_batch(
    store: HistoryStore, services: Services
) -> None:
    m0 = recent_hour(1)
    clock = FakeClock(m0)
    metrics = MetricsService(Sampler([Steady()], clock=clock), store, interval=1.0)
    calls: list[list[int]] = []
    release = threading.Event()
    real_write = store.write

    def slow_write(minutes: list[tuple[int, dict[str, tuple[float, float, float]]]]) -> None:
        calls.append([start for start, _ in minutes])
        if len(calls) == 1:
            release.wait(5)  # the database is busy (a backup, another writer) for a while
        real_write(minutes)

    store.write = slow_write  # type: ignore[method-assign]
    try:
        for second in range(3 * MINUTE + 5):
            clock.now = m0 + second
            metrics.tick()
            await asyncio.sleep(0)
        assert calls == [[m0]]  # one call for the first minute, and it hangs
        release.set()
        await wait_for(lambda: flush_done(metrics))
        clock.now = m0 + 3 * MINUTE + 6
        metrics.tick()
        await wait_for(lambda: len(calls) == 2 and flush_done(metrics))
    finally:
        release.set()
        await metrics.stop()
    assert calls == [[m0], [m0 + 60, m0 + 120]]
    assert [r[1] for r in rows(services, "metric_minute")] == [m0, m0 + 60, m0 + 120]


# -- long ranges from the database -----------------------------------------------------------------


def ramp(ts: int) -> float:
    return float((ts // MINUTE) % 1440)  # minute of the day: 0 … 1439, then again


@pytest.fixture
def month(services: Services) -> dict[str, Any]:
    """30 days of minute rows and their hour rollups for two series, written straight into SQLite."""
    now = time.time()
    end = int(now) // MINUTE * MINUTE
    minute_ts = range(end - 30 * DAY, end, MINUTE)
    minutes = {
        1: [(ts, ramp(ts), ramp(ts) - 1, ramp(ts) + 1) for ts in minute_ts],
        2: [(ts, 500.0, 500.0, 500.0) for ts in minute_ts],
    }
    hours: dict[int, list[tuple[int, float, float, float]]] = {}
    for sid, series in minutes.items():
        grouped: dict[int, list[tuple[int, float, float, float]]] = {}
        for row in series:
            grouped.setdefault(row[0] // HOUR * HOUR, []).append(row)
        hours[sid] = [
            (hour, sum(r[1] for r in rs) / len(rs), min(r[2] for r in rs), max(r[3] for r in rs))
            for hour, rs in sorted(grouped.items())
        ]
    with services.db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO metric_series (id, key) VALUES (:id, :key)"),
            [{"id": 1, "key": CPU}, {"id": 2, "key": DISK}],
        )
        for table, data in (("metric_minute", minutes), ("metric_hour", hours)):
            conn.execute(
                text(f"INSERT INTO {table} (series_id, ts, avg, min, max) VALUES (:s, :ts, :a, :lo, :hi)"),
                [
                    {"s": sid, "ts": ts, "a": a, "lo": lo, "hi": hi}
                    for sid, series in data.items()
                    for ts, a, lo, hi in series
                ],
            )
    return {"now": now, "minutes": minutes[1], "hours": hours[1]}


def expected(rows: list[tuple[int, float, float, float]], since: float, until: float, step: int) -> list:
    # The store works in whole seconds (it queries from int(since)): a row on a minute boundary
    # within the second before `since` is in, as it is for the store when `now` is in a minute's first second.
    buckets: dict[int, list[tuple[int, float, float, float]]] = {}
    for row in rows:
        if int(since) <= row[0] < int(until):
            buckets.setdefault(int((row[0] - int(since)) // step), []).append(row)
    return [
        (min(r[0] for r in rs), sum(r[1] for r in rs) / len(rs), min(r[2] for r in rs), max(r[3] for r in rs))
        for _, rs in sorted(buckets.items())
    ]


def same_points(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0] and g[2:] == w[2:], (g, w)
        assert g[1] == pytest.approx(w[1], abs=1e-3), (g, w)


def test_a_day_comes_from_minute_rows_within_the_point_budget(
    store: HistoryStore, month: dict[str, Any]
) -> None:
    now = month["now"]
    day = store.query(CPU, now - DAY, now)
    assert day.tier == "minute"
    assert day.step == 120  # 1440 minutes would be too many points: two minutes each
    assert 700 <= len(day.points) <= MAX_POINTS
    same_points(day.points, expected(month["minutes"], now - DAY, now, 120))
    # By hand: every inner bucket holds two consecutive minutes of the ramp.
    ts, avg, low, high = next(p for p in day.points[1:-1] if ramp(p[0]) < 1439)
    assert (avg, low, high) == (ramp(ts) + 0.5, ramp(ts) - 1, ramp(ts) + 2)

    hourly = store.query(CPU, now - DAY, now, step=HOUR)
    assert (hourly.tier, hourly.step) == ("minute", HOUR)
    assert len(hourly.points) in (24, 25)
    same_points(hourly.points, expected(month["minutes"], now - DAY, now, HOUR))

    # A step finer than the budget allows is raised to it, never to 1440 points.
    assert store.query(CPU, now - DAY, now, step=10).step == 120
    assert {p[1] for p in store.query(DISK, now - DAY, now).points} == {500.0}


def test_a_month_and_a_year_come_from_hour_rows(store: HistoryStore, month: dict[str, Any]) -> None:
    now = month["now"]
    thirty = store.query(CPU, now - 30 * DAY, now)
    assert (thirty.tier, thirty.step) == ("hour", HOUR)
    assert 700 <= len(thirty.points) <= MAX_POINTS
    same_points(thirty.points, expected(month["hours"], now - 30 * DAY, now, HOUR))

    year = store.query(CPU, now - 365 * DAY, now)
    assert year.tier == "hour"
    assert year.step == math.ceil(365 * DAY / MAX_POINTS / HOUR) * HOUR
    assert len(year.points) <= MAX_POINTS
    same_points(year.points, expected(month["hours"], now - 365 * DAY, now, year.step))

    daily = store.query(CPU, now - 30 * DAY, now, step=DAY)
    assert (daily.tier, daily.step) == ("hour", DAY)
    assert len(daily.points) in (30, 31)
    same_points(daily.points, expected(month["hours"], now - 30 * DAY, now, DAY))


def test_impossible_ranges_are_refused(store: HistoryStore) -> None:
    now = time.time()
    for since, until, step in (
        (now, now, None),
        (now, now - 60, None),
        (now - 401 * DAY, now, None),
        (now - 60, now, 0),
        (now - 60, now, -5),
    ):
        with pytest.raises(Invalid):
            store.query(CPU, since, until, step)


def test_an_old_range_is_served_again_from_the_json_disk_cache(
    store: HistoryStore, month: dict[str, Any], services: Services, tmp_path: Path
) -> None:
    now = month["now"]
    since, until = now - 3 * DAY, now - 2 * DAY
    first = store.query(CPU, since, until)
    assert first.tier == "minute" and len(first.points) > 700

    with services.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM metric_minute"))
    assert store.query(CPU, since + 60, until).points == []  # the rows are really gone …
    assert store.query(CPU, since, until) == first  # … yet the repeated question is answered

    # Nothing in the cache is a pickle (mode 4 in diskcache's table): it could run code when read.
    with sqlite3.connect(tmp_path / "history-cache" / "cache.db") as cache_db:
        modes = {row[0] for row in cache_db.execute("SELECT mode FROM Cache")}
    assert modes and diskcache.core.MODE_PICKLE not in modes
