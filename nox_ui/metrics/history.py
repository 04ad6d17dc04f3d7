"""History in three tiers: 1-second points in RAM for the last hour, 1-minute and 1-hour rollups
(avg/min/max) in the database. Writes are batched: one insert of all series per minute."""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, text
from sqlmodel import col, select

from nox_ui.cache import Cache
from nox_ui.db import Database
from nox_ui.errors import Invalid
from nox_ui.metrics.sampler import Sample
from nox_ui.models import MetricHour, MetricMinute, MetricSeries

MINUTE = 60
HOUR = 3600
DAY = 86400
MAX_POINTS = 1000  # a chart never needs more; the step grows with the range instead
MAX_RANGE = 400 * DAY
YEAR_3000 = 32503680000  # Unix seconds
NAN = float("nan")
# Ranges the database will not change again (every minute or hour in them is written), kept a day;
# ranges reaching into minutes not yet written live in their own namespace, emptied by every write.
SETTLED = "history"
LIVE = "history.live"
LIVE_TTL = 2 * MINUTE  # a backstop: a write invalidates them sooner

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
        cache: Cache,
        *,
        interval: float = 1.0,
        ram_seconds: int = HOUR,
        retention: Retention | None = None,
    ) -> None:
        self.db = db
        self.interval = interval
        self.retention = retention or Retention()
        self.ring = RingBuffer(max(2, math.ceil(ram_seconds / interval)))
        self.cache = cache
        # Whether this process stored ranges (live ones: since the last write): only then do writes
        # and prunes evict, so a panel nobody asks for history never opens the disk cache.
        self._cached_live = False
        self._cached_settled = False
        self._series_ids: dict[str, int] = {}
        self._db_lock = threading.Lock()
        last_minute, self._last_hour = self._stored_marks()
        # Minutes already in the database are never written twice (restart inside the same minute).
        self._flushed_until = last_minute + MINUTE if last_minute is not None else None
        # Minutes before this are in the database for good (the rollups: `_last_hour`).
        self._written_until = self._flushed_until
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
            known_ids, last_hour = dict(self._series_ids), self._last_hour
            try:
                ids = self._ids_for({sid for _, agg in minutes for sid in agg}, session)
                rows = [
                    {"series_id": ids[sid], "ts": ts, "avg": avg, "min": low, "max": high}
                    for ts, agg in minutes
                    for sid, (avg, low, high) in agg.items()
                ]
                session.execute(insert(MetricMinute), rows)
                self._roll_up_hours(session, minutes[-1][0] + MINUTE)
                session.commit()
            except BaseException:
                # Nothing of it is stored (a full disk, say): forget the series ids and the hour it made,
                # so the same minutes can be written again later.
                self._series_ids, self._last_hour = known_ids, last_hour
                raise
            self._written_until = max(self._written_until or 0, minutes[-1][0] + MINUTE)
        if self._cached_live:
            # Their keys hold the old write mark, so no query reaches them again; this frees them.
            self._cached_live = False
            self.cache.invalidate(LIVE)
        if time.time() - self._last_prune > HOUR:
            self.prune()

    @property
    def written_until(self) -> int | None:
        """Every minute before this is in the database (None: nothing written yet)."""
        return self._written_until

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
            minutes = session.execute(
                delete(MetricMinute).where(col(MetricMinute.ts) < now - self.retention.minute_days * DAY)
            )
            hours = session.execute(
                delete(MetricHour).where(col(MetricHour.ts) < now - self.retention.hour_days * DAY)
            )
            session.commit()
        self._last_prune = now
        if self._cached_settled and (minutes.rowcount or hours.rowcount):  # type: ignore[attr-defined]
            # A settled range may have held the rows just deleted (one stored by an earlier process
            # expires within its day; the tier choice keeps most such ranges from being asked again).
            self.cache.invalidate(SETTLED)

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
        # Read before the database: a write committed meanwhile moves the mark, so the answer is
        # stored under the old one, which no later query asks for.
        mark = self._written_until if tier == "minute" else self._last_hour
        settled = mark is not None and until <= (mark if tier == "minute" else mark + HOUR)
        key = f"{metric}:{tier}:{int(since)}:{int(until)}:{step}"
        if settled:
            namespace, ttl = SETTLED, float(DAY)
            self._cached_settled = True
        else:
            namespace, ttl, key = LIVE, float(LIVE_TTL), f"{key}:{mark}"
            self._cached_live = True
        points = self.cache.get_or_compute(
            namespace, key, lambda: self._query_db(tier, metric, int(since), int(until), step), ttl=ttl
        )
        # A cache hit is JSON: its points come back as lists.
        return HistoryResult(metric, tier, step, [(int(p[0]), p[1], p[2], p[3]) for p in points])

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


def _bucket(points: list[tuple[float, float]], since: float, step: int) -> list[Point]:
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        buckets.setdefault(int((ts - since) // step), []).append(value)
    return [
        (int(since + index * step), round(sum(vs) / len(vs), 4), min(vs), max(vs))
        for index, vs in sorted(buckets.items())
    ]
