"""(j) The cache, cold vs warm, where the panel uses it (`python -m bench --only cache`, ~1 minute):

- history: `HistoryStore.query` over 7 days (the longest minute-tier range) and 30 days (hour tier) on
  30 days of generated minute + hour rows (bench/history_bench.py's generator), each namespace
  invalidated before a cold query (so the cache write it pays is included), then the same range warm;
- processes: N viewers (threads, as the pages' worker threads) listing every 2 s like the processes
  page, with the snapshot shared (`SNAPSHOT_SECONDS`) and with one reading per listing (the 0.4.0
  behaviour): full readings of the process table per second; and one listing cold vs warm;
- host facts: read from the OS vs from the cache.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.util import percentile

DAY = 86400
SERIES = 10  # history_bench uses 40 for its own rows; the ratio does not depend on it
VIEWERS = (1, 10, 50)
WINDOW = 6.0  # seconds each viewer count runs, per mode
REFRESH = 2.0  # the processes page's refresh (pages/processes.py REFRESH_SECONDS)


def _ms(run: Any, times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def _pair(cold: list[float], warm: list[float]) -> dict[str, float]:
    cold_p50, warm_p50 = percentile(cold, 50), percentile(warm, 50)
    return {
        "cold_p50_ms": cold_p50,
        "cold_p95_ms": percentile(cold, 95),
        "warm_p50_ms": warm_p50,
        "warm_p95_ms": percentile(warm, 95),
        "ratio": cold_p50 / warm_p50 if warm_p50 else float("nan"),
    }


def history(workdir: Path) -> dict[str, Any]:
    from bench.history_bench import _fill, _series_keys
    from nox_ui.cache import Cache
    from nox_ui.config import Settings
    from nox_ui.db import Database
    from nox_ui.metrics.history import LIVE, SETTLED, HistoryStore
    from nox_ui.server import prepare

    data_dir = workdir / "cache-bench-data"
    settings = Settings(data_dir=data_dir, database_url=None)
    prepare(settings).close()  # the migrated schema, like `serve`
    keys = _series_keys()[:SERIES]
    now = int(time.time())
    counts = _fill(data_dir / "nox.db", keys, now)
    db = Database(settings.resolved_database_url)
    cache = Cache(data_dir / "cache")
    store = HistoryStore(db, cache)
    out: dict[str, Any] = {"series": len(keys), **counts}
    try:
        for label, span in (("7d", 7 * DAY), ("30d", 30 * DAY)):
            since, until = now - span - 120, now - 120
            store.query(keys[0], since, until)  # SQLite's page cache and the code paths, untimed

            def cold(since: float = since, until: float = until) -> None:
                cache.invalidate(SETTLED)
                cache.invalidate(LIVE)
                store.query(keys[0], since, until)

            cold_ms = _ms(cold, 30)
            warm_ms = _ms(lambda since=since, until=until: store.query(keys[0], since, until), 200)
            result = store.query(keys[0], since, until)
            out[label] = {"tier": result.tier, "points": len(result.points), **_pair(cold_ms, warm_ms)}
    finally:
        cache.close()
        db.dispose()
    return out


class _CountedReadings:
    """Counts full readings of the process table (each starts with `psutil.pids()`)."""

    def __init__(self) -> None:
        self.count = 0
        self._real = psutil.pids
        self._lock = threading.Lock()

    def __enter__(self) -> _CountedReadings:
        def counted() -> list[int]:
            with self._lock:
                self.count += 1
            return self._real()

        psutil.pids = counted
        return self

    def __exit__(self, *_exc: object) -> None:
        psutil.pids = self._real


def _viewers(count: int, shared: bool) -> dict[str, Any]:
    import nox_ui.services.processes as processes_module
    from nox_ui.cache import Cache
    from nox_ui.roles import Principal, Role
    from nox_ui.services.processes import ProcessService

    service = ProcessService(cache=Cache(None))
    viewer = Principal(user_id=1, username="viewer", role=Role.VIEWER)
    shared_seconds = processes_module.SNAPSHOT_SECONDS
    processes_module.SNAPSHOT_SECONDS = shared_seconds if shared else 0.0
    latencies: list[float] = []
    lock = threading.Lock()
    service.list(viewer)  # psutil.Process objects made once, as on a panel that has been looked at
    rng = random.Random(count)
    try:
        with _CountedReadings() as readings:
            started = time.monotonic()
            end = started + WINDOW

            def page(phase: float) -> None:
                tick = started + phase
                while tick < end:
                    time.sleep(max(0.0, tick - time.monotonic()))
                    begin = time.perf_counter()
                    service.list(viewer, sort="cpu", limit=50)
                    with lock:
                        latencies.append((time.perf_counter() - begin) * 1000.0)
                    tick += REFRESH

            threads = [threading.Thread(target=page, args=(rng.uniform(0, REFRESH),)) for _ in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
    finally:
        processes_module.SNAPSHOT_SECONDS = shared_seconds
    return {
        "listings": len(latencies),
        "readings": readings.count,
        "readings_per_s": readings.count / elapsed,
        "listing_p50_ms": percentile(latencies, 50),
        "listing_p95_ms": percentile(latencies, 95),
    }


def processes() -> dict[str, Any]:
    from nox_ui.cache import Cache
    from nox_ui.roles import Principal, Role
    from nox_ui.services.processes import SNAPSHOT, ProcessService

    cache = Cache(None)
    service = ProcessService(cache=cache)
    viewer = Principal(user_id=1, username="viewer", role=Role.VIEWER)
    service.list(viewer)

    def cold() -> None:
        cache.invalidate(*SNAPSHOT)
        service.list(viewer, limit=50)

    cold_ms = _ms(cold, 20)
    warm_ms = _ms(lambda: service.list(viewer, limit=50), 200)
    out: dict[str, Any] = {"processes": len(psutil.pids()), "listing": _pair(cold_ms, warm_ms), "viewers": {}}
    for count in VIEWERS:
        out["viewers"][str(count)] = {"shared": _viewers(count, True), "per_listing": _viewers(count, False)}
    return out


def host() -> dict[str, Any]:
    from nox_ui.cache import Cache
    from nox_ui.metrics.host import host_facts, read_host_facts

    cache = Cache(None)
    host_facts(cache)
    return _pair(_ms(read_host_facts, 50), _ms(lambda: host_facts(cache), 2000))


def run(workdir: Path) -> dict[str, Any]:
    return {"history": history(workdir), "processes": processes(), "host": host(), "window_s": WINDOW}
