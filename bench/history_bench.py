"""(e) History queries over 30 days of generated data: a HistoryStore on a temporary SQLite file
(migrated like `serve` does), 30 days of minute rows plus the matching hour rows for ~40 series,
then `store.query(series, since, until)` for 24 h, 7 d (the longest minute-tier range) and 30 d, with and without the disk cache."""

from __future__ import annotations

import math
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.util import percentile

DAY = 86400
SERIES = 40


def _series_keys() -> list[str]:
    """The series this host really produces, topped up with plausible extra ones to SERIES."""
    from nox_ui.metrics.collectors import default_collectors
    from nox_ui.metrics.sampler import Sampler

    sampler = Sampler(default_collectors())
    sampler.sample()
    time.sleep(0.05)
    keys = sorted(sampler.sample().values)[:SERIES]
    extra = 0
    while len(keys) < SERIES:
        keys.append(f'net.rx_bytes_per_s{{iface="bench{extra}"}}')
        extra += 1
    return keys


def _fill(db_file: Path, keys: list[str], now: int) -> dict[str, int]:
    """Bulk insert (executemany, one transaction) of minute rows and their hour roll-ups."""
    start = (now - 30 * DAY) // 3600 * 3600
    end = now // 60 * 60  # the current minute is not finished
    minutes = range(start, end, 60)
    connection = sqlite3.connect(db_file)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.executemany("INSERT INTO metric_series (key) VALUES (?)", [(k,) for k in keys])
        ids = dict(connection.execute("SELECT key, id FROM metric_series").fetchall())
        rng = random.Random(42)
        minute_rows = 0
        hour_rows: list[tuple[int, int, float, float, float]] = []
        for key in keys:
            sid = ids[key]
            phase = rng.random() * math.tau
            rows = []
            hour_sum, hour_min, hour_max, hour_n, hour_ts = 0.0, math.inf, -math.inf, 0, start
            for ts in minutes:
                base = 50 + 30 * math.sin(ts / DAY * math.tau + phase)
                avg = base + rng.uniform(-5, 5)
                low, high = avg - rng.uniform(0, 5), avg + rng.uniform(0, 5)
                rows.append((sid, ts, avg, low, high))
                if ts // 3600 * 3600 != hour_ts:
                    hour_rows.append((sid, hour_ts, hour_sum / hour_n, hour_min, hour_max))
                    hour_sum, hour_min, hour_max, hour_n, hour_ts = 0.0, math.inf, -math.inf, 0, ts
                hour_sum, hour_n = hour_sum + avg, hour_n + 1
                hour_min, hour_max = min(hour_min, low), max(hour_max, high)
            if hour_n == 60:  # only finished hours are rolled up
                hour_rows.append((sid, hour_ts, hour_sum / hour_n, hour_min, hour_max))
            connection.executemany(
                "INSERT INTO metric_minute (series_id, ts, avg, min, max) VALUES (?, ?, ?, ?, ?)", rows
            )
            minute_rows += len(rows)
        connection.executemany(
            "INSERT INTO metric_hour (series_id, ts, avg, min, max) VALUES (?, ?, ?, ?, ?)", hour_rows
        )
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()
    return {"minute_rows": minute_rows, "hour_rows": len(hour_rows)}


def _timed(store: Any, key: str, since: float, until: float) -> tuple[float, int]:
    started = time.perf_counter()
    result = store.query(key, since, until)
    return (time.perf_counter() - started) * 1000.0, len(result.points)


def run(workdir: Path, queries: int = 200) -> dict[str, Any]:
    from nox_ui.cache import Cache
    from nox_ui.config import Settings
    from nox_ui.metrics.history import HistoryStore
    from nox_ui.server import prepare

    data_dir = workdir / "history-data"
    services = prepare(Settings(data_dir=data_dir, database_url=None))  # migrated schema, like `serve`
    services.close()
    keys = _series_keys()
    now = int(time.time())
    started = time.perf_counter()
    counts = _fill(data_dir / "nox.db", keys, now)
    fill_seconds = time.perf_counter() - started
    db_bytes = (data_dir / "nox.db").stat().st_size

    from nox_ui.db import Database

    db = Database(Settings(data_dir=data_dir, database_url=None).resolved_database_url)
    cache = Cache(workdir / "history-cache")
    store = HistoryStore(db, cache)
    rng = random.Random(7)
    out: dict[str, Any] = {"series": len(keys), "fill_seconds": fill_seconds, "db_mib": db_bytes / 2**20}
    out.update(counts)
    try:
        for label, span in (("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)):
            # Warm the SQLite page cache and the code paths once, outside the timings.
            _timed(store, keys[0], now - span - 7, now - 7)
            uncached, points = [], []
            for _ in range(queries):
                # A different range every time (shifted by whole seconds) misses the disk cache;
                # the cache write that follows a miss is part of what a user waits for.
                shift = rng.randint(60, 3600)
                ms, n = _timed(store, rng.choice(keys), now - span - shift, now - shift)
                uncached.append(ms)
                points.append(n)
            tier = store.choose_tier(now - span - 60, now - 60, time.time())[0]
            key, since, until = keys[1], now - span - 120, now - 120
            _timed(store, key, since, until)  # fills the cache entry
            cached = [_timed(store, key, since, until)[0] for _ in range(queries)]
            out[label] = {
                "tier": tier,
                "points": round(sum(points) / len(points)),
                "uncached_p50_ms": percentile(uncached, 50),
                "uncached_p95_ms": percentile(uncached, 95),
                "cached_p50_ms": percentile(cached, 50),
                "cached_p95_ms": percentile(cached, 95),
            }
    finally:
        cache.close()
        db.dispose()
    return out
