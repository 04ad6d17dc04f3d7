"""History in three tiers: 1-second points in RAM for the last hour, 1-minute and 1-hour rollups
(avg/min/max) in the database. Writes are batched: one insert of all series per minute."""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, text
from sqlmodel import col, select

from nox_ui.db import Database
from nox_ui.errors import Invalid
from nox_ui.metrics.sampler import Sample
from nox_ui.models import MetricHour, MetricMinute, MetricSeries

if TYPE_CHECKING:
    import diskcache

MINUTE = 60
HOUR = 3600
DAY = 86400
MAX_POINTS = 1000  # a chart never needs more; the step grows with the range instead
MAX_RANGE = 400 * DAY
YEAR_3000 = 32503680000  # Unix seconds
NAN = float("nan")

Point = tuple[int, float, float, float]  # bucket start (Unix s), avg, min, max


@dataclass(frozen=True)
class Retention:
    minute_days: int = 30
    hour_days: int = 365


@dataclass(frozen=True)
class HistoryResult:
    metric: str
    tier: str  # "second", "minute" or "hour"
    step: int  # seconds per point
    points: list[Point]


class RingBuffer:
    """The 1-second tier: one float array per series, overwritten in a circle (~28 KiB per series and hour)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.timestamps = array("d", [NAN]) * capacity
        self.columns: dict[str, array[float]] = {}
        self.head = 0  # next slot to write
        self.count = 0

    def append(self, ts: float, values: dict[str, float]) -> None:
        slot = self.head
        self.timestamps[slot] = ts
        for sid, column in self.columns.items():
            column[slot] = values.get(sid, NAN)
        for sid in values.keys() - self.columns.keys():
            column = array("d", [NAN]) * self.capacity
            column[slot] = values[sid]
            self.columns[sid] = column
        self.head = (slot + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def _slots(self) -> Iterable[int]:
        start = (self.head - self.count) % self.capacity
        return ((start + i) % self.capacity for i in range(self.count))

    @property
    def oldest(self) -> float | None:
        return self.timestamps[(self.head - self.count) % self.capacity] if self.count else None

    def window(self, sid: str, since: float, until: float) -> list[tuple[float, float]]:
        column = self.columns.get(sid)
        if column is None:
            return []
        points = []
        for slot in self._slots():
            ts = self.timestamps[slot]
            if since <= ts < until and not math.isnan(column[slot]):
                points.append((ts, column[slot]))
        return points

    def aggregate(self, since: float, until: float) -> dict[str, tuple[float, float, float]]:
        """avg/min/max of every series over [since, until)."""
        slots = [s for s in self._slots() if since <= self.timestamps[s] < until]
        result = {}
        for sid, column in self.columns.items():
            values = [column[s] for s in slots if not math.isnan(column[s])]
            if values:
                result[sid] = (sum(values) / len(values), min(values), max(values))
        return result


class HistoryStore:
    def __init__(
        self,
        db: Database,
        cache_dir: Path,
        *,
        interval: float = 1.0,
        ram_seconds: int = HOUR,
        retention: Retention | None = None,
    ) -> None:
        self.db = db
        self.interval = interval
        self.retention = retention or Retention()
        self.ring = RingBuffer(max(2, math.ceil(ram_seconds / interval)))
        self._cache_dir = cache_dir
        self._cache: diskcache.Cache | None = None
        self._series_ids: dict[str, int] = {}
        self._db_lock = threading.Lock()
        last_minute, self._last_hour = self._stored_marks()
        # Minutes already in the database are never written twice (restart inside the same minute).
        self._flushed_until = last_minute + MINUTE if last_minute is not None else None
        self._last_prune = 0.0

    def _stored_marks(self) -> tuple[int | None, int | None]:
        with self.db.session() as session:
            minute = session.exec(select(func.max(MetricMinute.ts))).one()
            hour = session.exec(select(func.max(MetricHour.ts))).one()
        return minute, hour

    # -- writing -----------------------------------------------------------------------------------

    def add(self, sample: Sample) -> None:
        self.ring.append(sample.ts, sample.values)
        if self._flushed_until is None:
            # The first minute may be partial; its rollup covers what this process sampled of it.
            self._flushed_until = int(sample.ts // MINUTE * MINUTE)

    def completed_minutes(self, now: float) -> list[tuple[int, dict[str, tuple[float, float, float]]]]:
        """Aggregate every finished minute not yet written (runs on the event loop: RAM only)."""
        if self._flushed_until is None:
            return []
        current = int(now // MINUTE * MINUTE)
        minutes = []
        start = max(self._flushed_until, current - HOUR)
        while start < current:
            aggregate = self.ring.aggregate(start, start + MINUTE)
            if aggregate:
                minutes.append((start, aggregate))
            start += MINUTE
        self._flushed_until = current
        return minutes

    def write(self, minutes: list[tuple[int, dict[str, tuple[float, float, float]]]]) -> None:
        """Store minute rows, roll finished hours up, prune old rows. Runs in a worker thread."""
        if not minutes:
            return
        with self._db_lock, self.db.session() as session:
            ids = self._ids_for({sid for _, agg in minutes for sid in agg}, session)
            rows = [
                {"series_id": ids[sid], "ts": ts, "avg": avg, "min": low, "max": high}
                for ts, agg in minutes
                for sid, (avg, low, high) in agg.items()
            ]
            session.execute(insert(MetricMinute), rows)
            self._roll_up_hours(session, minutes[-1][0] + MINUTE)
            session.commit()
        if time.time() - self._last_prune > HOUR:
            self.prune()

    def _ids_for(self, keys: set[str], session: Any) -> dict[str, int]:
        missing = keys - self._series_ids.keys()
        if missing:
            known = session.exec(select(MetricSeries).where(col(MetricSeries.key).in_(missing))).all()
            self._series_ids.update({row.key: row.id for row in known})
            new = missing - self._series_ids.keys()
            if new:
                session.execute(insert(MetricSeries), [{"key": key} for key in sorted(new)])
                rows = session.exec(select(MetricSeries).where(col(MetricSeries.key).in_(new))).all()
                self._series_ids.update({row.key: row.id for row in rows})
        return {key: self._series_ids[key] for key in keys}

    def _roll_up_hours(self, session: Any, minutes_until: int) -> None:
        finished = minutes_until // HOUR * HOUR  # hours that ended at or before this
        start = (self._last_hour + HOUR) if self._last_hour is not None else finished - HOUR
        if start >= finished:
            return
        # Plain SQL that SQLite and PostgreSQL read alike (integer division buckets the hour).
        session.execute(
            text(
                "INSERT INTO metric_hour (series_id, ts, avg, min, max) "
                "SELECT series_id, (ts / 3600) * 3600 AS hour, AVG(avg), MIN(min), MAX(max) FROM metric_minute "
                "WHERE ts >= :start AND ts < :end GROUP BY series_id, (ts / 3600) * 3600"
            ),
            {"start": start, "end": finished},
        )
        self._last_hour = finished - HOUR

    def prune(self, now: float | None = None) -> None:
        now = now or time.time()
        with self._db_lock, self.db.session() as session:
            session.execute(
                delete(MetricMinute).where(col(MetricMinute.ts) < now - self.retention.minute_days * DAY)
            )
            session.execute(
                delete(MetricHour).where(col(MetricHour.ts) < now - self.retention.hour_days * DAY)
            )
            session.commit()
        self._last_prune = now

    # -- reading -----------------------------------------------------------------------------------

    def choose_tier(self, since: float, until: float, now: float) -> tuple[str, int]:
        span = until - since
        if span <= HOUR and until > now - HOUR:
            return "second", max(1, round(self.interval))
        if span <= 7 * DAY and since >= now - self.retention.minute_days * DAY:
            return "minute", MINUTE
        return "hour", HOUR

    def query(self, metric: str, since: float, until: float, step: int | None = None) -> HistoryResult:
        if not since < until:
            raise Invalid("since must be before until")
        if since < 0 or not until < YEAR_3000:  # beyond that lie no samples, and SQLite's integers end
            raise Invalid("since and until must lie between 1970 and the year 3000")
        if until - since > MAX_RANGE:
            raise Invalid(f"range too long: at most {MAX_RANGE // DAY} days")
        if step is not None and not 1 <= step <= MAX_RANGE:
            raise Invalid(f"step must be 1 second to {MAX_RANGE // DAY} days")
        now = time.time()
        tier, resolution = self.choose_tier(since, until, now)
        auto = math.ceil((until - since) / MAX_POINTS / resolution) * resolution
        step = max(resolution, step or 0, auto)
        if tier == "second":
            # RAM holds only what this process sampled; older parts of the range come from the minute tier.
            oldest = self.ring.oldest if self.ring.oldest is not None else until
            older: list[Point] = []
            if since < oldest:
                older = self._query_db(
                    "minute", metric, int(since), int(min(until, oldest)), max(MINUTE, step)
                )
            recent = _bucket(self.ring.window(metric, max(since, oldest), until), since, step)
            return HistoryResult(metric, tier, step, older + recent)
        key = f"history:{metric}:{tier}:{int(since)}:{int(until)}:{step}"
        cached = self.cache.get(key)
        if cached is not None:
            return HistoryResult(metric, tier, step, [(int(p[0]), p[1], p[2], p[3]) for p in cached])
        points = self._query_db(tier, metric, int(since), int(until), step)
        # A range that ended a while ago will not change; a live one is kept for one step.
        self.cache.set(key, points, expire=DAY if until < now - 2 * step else max(step, 30))
        return HistoryResult(metric, tier, step, points)

    @property
    def cache(self) -> diskcache.Cache:
        """The disk cache of database answers, opened on the first database query: diskcache (and
        its sqlite and pickle machinery, ~2.5 MiB) is not loaded by a panel nobody asks for history."""
        if self._cache is None:
            import diskcache

            self._cache = diskcache.Cache(
                str(self._cache_dir), disk=diskcache.JSONDisk, size_limit=64 * 2**20
            )
        return self._cache

    def _query_db(self, tier: str, metric: str, since: int, until: int, step: int) -> list[Point]:
        table = "metric_minute" if tier == "minute" else "metric_hour"
        with self.db.session() as session:
            series = session.exec(select(MetricSeries.id).where(MetricSeries.key == metric)).first()
            if series is None:
                return []
            rows = session.execute(
                text(
                    f"SELECT MIN(ts), AVG(avg), MIN(min), MAX(max) FROM {table} "
                    "WHERE series_id = :sid AND ts >= :since AND ts < :until "
                    "GROUP BY (ts - :since) / :step ORDER BY MIN(ts)"
                ),
                {"sid": series, "since": since, "until": until, "step": step},
            ).all()
        return [(int(ts), round(avg, 4), low, high) for ts, avg, low, high in rows]

    def known_series(self) -> set[str]:
        with self.db.session() as session:
            stored = set(session.exec(select(MetricSeries.key)).all())
        return stored | set(self.ring.columns)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _bucket(points: list[tuple[float, float]], since: float, step: int) -> list[Point]:
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        buckets.setdefault(int((ts - since) // step), []).append(value)
    return [
        (int(since + index * step), round(sum(vs) / len(vs), 4), min(vs), max(vs))
        for index, vs in sorted(buckets.items())
    ]
