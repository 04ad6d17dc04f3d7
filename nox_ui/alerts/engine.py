"""The alert engine: every sample from the metrics bus is checked against every enabled rule.

Two layers:

- **The pure core** (`Condition`, `Track`, `advance`, `silence_series`, `replay`): one state machine
  per (rule, series), no I/O, no clock. The engine and the preview both run it, so what the preview
  shows for a recorded series is what the engine does with the same points.
- **`AlertEngine`**: compiles rules into a per-metric-name index, keeps one `Track` per pending or
  firing (rule, series) in memory, persists episodes once they fire (`alerts` table) in a worker
  thread, and hands messages to the `Dispatcher`.

The state machine (`advance`), for a rule `value OP threshold` held `for_seconds`:

    inactive ──holds──► pending(since=ts) ──held ≥ for_seconds──► firing ──clears──► resolved
                         └──stops holding──► inactive (silently)

`for_seconds = 0` fires on the first sample that holds. A firing episode *clears* when
`not (value OP clear)`, `clear` being `clear_threshold` when set (hysteresis: `> 90` clearing at 80
stays firing between 80 and 90 and resolves at 80 or below) and the threshold otherwise. A NaN value
changes nothing.

A `nodata` rule is the same machine over a derived series: the seconds since a sample last carried
any series matching the selector (the engine starts counting at the first sample it evaluates the
rule on), firing when that reaches `for_seconds`; its single episode is keyed by the selector text.
So `nodata` on `disk.used_percent{mount="/data"}` fires when that one series goes missing, and on
`net.rx_bytes_per_s` only when every interface is gone.

A series that disappears from the samples keeps a firing alert firing (a pending one is dropped, so
the series must hold `for_seconds` again when it returns) until its value is seen again, the rule changes so that it no longer matches, or
the rule is disabled or deleted (which resolves every firing episode of the rule at once).

Notifications: exactly one `firing` message per episode, unless a silence matched when it fired (the
message then goes out when the silence ends, if the episode still fires); with `repeat_seconds`, one
`repeat` message each `repeat_seconds` while firing, unless acknowledged or silenced; exactly one
`resolved` message when the episode resolves, sent when (and only when) a firing message was sent for
it, so a receiver that saw the alert fire always sees it end and a silenced alert notifies nobody.

Persistence: an episode is written when it fires (with `last_notified_at`) and when it resolves;
pending episodes live in memory only. On start `restore()` loads the firing episodes: one whose
condition still holds at the first sample stays firing without a new message; one that no longer
holds resolves and sends its one resolved message (if its firing was sent). `last_notified_at` keeps
`repeat_seconds` counting across restarts.

Cost per sample: when the sample's set of series is the one seen before (one set comparison), each
rule walks its cached list of matching series, and an inactive series costs a dict lookup and one
float comparison. The matching lists are rebuilt only when the set of series changes. So the cost
grows with the number of (rule, matching series) pairs, not with rules times all series.
"""

from __future__ import annotations

import asyncio
import json
import operator
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from loguru import logger
from nicegui import Event
from sqlalchemy import delete, update
from sqlmodel import col, select

from nox_ui.alerts.messages import AlertMessage, Dispatcher
from nox_ui.alerts.rules import OPS, RuleDef, RuleIn, RuleService, Selector
from nox_ui.alerts.silences import SilenceDef, SilenceService
from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.metrics.history import HistoryStore
from nox_ui.metrics.sampler import Sample
from nox_ui.metrics.series import parse_series, series_name
from nox_ui.metrics.service import MetricsService
from nox_ui.models import Alert, AlertRule
from nox_ui.roles import Principal, Role, authorize
from nox_ui.services.audit import AuditService

FIRE: Final = "fire"
RESOLVE: Final = "resolve"
Transition = Literal["fire", "resolve"] | None
MAX_COMMENT = 512
MAX_LIMIT = 1000
PREVIEW_STEP = 60  # the minute tier
PREVIEW_CHUNK = 1000 * PREVIEW_STEP  # HistoryStore answers at most ~1,000 points per query
PREVIEW_MAX_SERIES = 100
PREVIEW_MAX_HOURS = 7 * 24


# == the pure core ====================================================================================


def _worse_of(op: str, threshold: float) -> Callable[[float, float], float]:
    """Which of two values is further on the alerting side: the `peak` of an episode."""
    if op in (">", ">="):
        return max
    if op in ("<", "<="):
        return min
    return lambda a, b: a if abs(a - threshold) >= abs(b - threshold) else b


@dataclass(frozen=True, slots=True)
class Condition:
    """What `advance` needs of a rule: fires while `holds(value, threshold)` for `for_seconds`,
    resolves when `not holds(value, clear)`."""

    holds: Callable[[float, float], bool]
    threshold: float
    clear: float
    for_seconds: float
    worse: Callable[[float, float], float]

    @classmethod
    def of(cls, rule: RuleDef) -> Condition:
        if rule.kind == "nodata":  # over the derived "seconds silent" series
            limit = float(rule.for_seconds)
            return cls(operator.ge, limit, limit, 0.0, max)
        clear = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
        return cls(
            OPS[rule.op], rule.threshold, clear, float(rule.for_seconds), _worse_of(rule.op, rule.threshold)
        )


@dataclass(slots=True, eq=False)
class Track:
    """One pending (`fired_at` None) or firing episode of one rule on one series. `advance` reads and
    writes the first four fields; the rest is the engine's bookkeeping."""

    since: float  # the condition has held since (pending_since)
    value: float  # the latest value
    peak: float  # the worst value of the episode
    fired_at: float | None = None
    alert_id: int | None = None  # the `alerts` row, once written
    notified_at: float | None = None  # the last firing/repeat message (None: never sent)
    acked_by: str | None = None


def advance(cond: Condition, track: Track | None, value: float, ts: float) -> tuple[Track | None, Transition]:
    """One step of the state machine. Returns the track afterwards (None: inactive) and the transition
    (FIRE, RESOLVE or None). On RESOLVE the caller still holds the old track, whose fields describe the
    episode that ended. Mutates `track` in place (it is cheap and nothing else owns it)."""
    if value != value:  # NaN: no reading, no change
        return track, None
    if track is None:
        if not cond.holds(value, cond.threshold):
            return None, None
        track = Track(since=ts, value=value, peak=value)
        if cond.for_seconds <= 0:
            track.fired_at = ts
            return track, FIRE
        return track, None
    if track.fired_at is None:
        if not cond.holds(value, cond.threshold):
            return None, None  # pending that stops holding: back to inactive, silently
        track.value = value
        track.peak = cond.worse(track.peak, value)
        if ts - track.since >= cond.for_seconds:
            track.fired_at = ts
            return track, FIRE
        return track, None
    if not cond.holds(value, cond.clear):
        return None, RESOLVE
    track.value = value
    track.peak = cond.worse(track.peak, value)
    return track, None


def silence_series(presence: Iterable[tuple[float, bool]], start: float) -> Iterator[tuple[float, float]]:
    """The derived series a nodata rule watches: at each time, seconds since the last time present
    (counting from `start` until it first is)."""
    last_seen = start
    for ts, present in presence:
        if present:
            last_seen = ts
        yield ts, ts - last_seen


@dataclass(frozen=True)
class Episode:
    """One firing episode: it started firing at `start` and resolved at `end` (None: still firing)."""

    series: str
    pending_since: float
    start: float
    end: float | None
    peak: float


def replay(cond: Condition, series: str, points: Iterable[tuple[float, float]]) -> list[Episode]:
    """Run the state machine over (ts, value) points in time order; the episodes that fired."""
    episodes: list[Episode] = []
    track: Track | None = None
    for ts, value in points:
        before = track
        track, transition = advance(cond, track, value, ts)
        if transition == RESOLVE:
            assert before is not None and before.fired_at is not None
            episodes.append(Episode(series, before.since, before.fired_at, ts, before.peak))
    if track is not None and track.fired_at is not None:
        episodes.append(Episode(series, track.since, track.fired_at, None, track.peak))
    return episodes


# == the preview ======================================================================================


@dataclass(frozen=True)
class Preview:
    since: float
    until: float
    resolution_seconds: int
    series: list[str]
    episodes: list[Episode]
    note: str


def matching_series(rule: RuleDef, known: Iterable[str]) -> list[str]:
    selector = rule.selector
    found = []
    for sid in known:
        if series_name(sid) != selector.name:
            continue
        if not selector.matchers or selector.matches(parse_series(sid)[1]):
            found.append(sid)
    return sorted(found)


def _minute_points(
    history: HistoryStore, sid: str, since: float, until: float
) -> tuple[list[tuple[float, float]], int]:
    points: list[tuple[float, float]] = []
    step = PREVIEW_STEP
    start = since
    while start < until:
        end = min(until, start + PREVIEW_CHUNK)
        result = history.query(sid, start, end, PREVIEW_STEP)
        step = max(step, result.step)
        points.extend((float(ts), avg) for ts, avg, _low, _high in result.points)
        start = end
    return points, step


def preview(rule: RuleDef, history: HistoryStore, *, hours: float = 24, now: float | None = None) -> Preview:
    """The episodes `rule` would have fired over the last `hours`, replayed from stored history.

    Each series' one-minute averages (the minute tier; the last hour may come from RAM, bucketed the
    same way) are fed to the same state machine as the engine, one point per minute, so `for_seconds`
    counts at minute resolution and a spike shorter than a minute shows only through its average."""
    if not 0 < hours <= PREVIEW_MAX_HOURS:
        raise Invalid(f"hours must be between 0 and {PREVIEW_MAX_HOURS}")
    now = time.time() if now is None else now
    since = float(int((now - hours * 3600) // PREVIEW_STEP * PREVIEW_STEP))
    until = float(now)
    series = matching_series(rule, history.known_series())
    note = (
        "Replayed from one-minute averages: for_seconds is counted at minute resolution and a spike "
        "shorter than a minute shows only through its average."
    )
    if len(series) > PREVIEW_MAX_SERIES:
        note += f" Only the first {PREVIEW_MAX_SERIES} of {len(series)} matching series are shown."
        series = series[:PREVIEW_MAX_SERIES]
    cond = Condition.of(rule)
    resolution = PREVIEW_STEP
    episodes: list[Episode] = []
    if rule.kind == "nodata":
        present: set[int] = set()
        for sid in series:
            points, step = _minute_points(history, sid, since, until)
            resolution = max(resolution, step)
            present.update(int((ts - since) // resolution) for ts, _ in points)
        grid = ((since + i * resolution, i in present) for i in range(int((until - since) // resolution) + 1))
        episodes = replay(cond, rule.selector.text, silence_series(grid, since))
        note += " Minutes when the panel was not running count as silence here."
    else:
        for sid in series:
            points, step = _minute_points(history, sid, since, until)
            resolution = max(resolution, step)
            episodes.extend(replay(cond, sid, points))
    episodes.sort(key=lambda e: (e.start, e.series))
    return Preview(since, until, resolution, series, episodes, note)


# == the engine =======================================================================================


@dataclass(frozen=True)
class AlertCounts:
    firing: int
    pending: int
    unacknowledged: int  # firing and not acknowledged: what the badge shows


@dataclass(frozen=True)
class AlertView:
    """One alert as the API and the UI list it. Pending alerts (in memory only) have no `id`; `key`
    (`<rule id>:<series>`) names every alert, pending or not."""

    id: int | None
    key: str
    rule_id: int
    rule_name: str
    severity: str
    series: str
    labels: dict[str, str]
    state: str  # pending | firing | resolved
    value: float | None
    threshold: float
    since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str
    silenced: bool


@dataclass(slots=True, eq=False)
class _Compiled:
    rule: RuleDef
    selector: Selector
    cond: Condition
    matched: list[str] = field(default_factory=list)  # series of the current key set that match
    tracks: dict[str, Track] = field(default_factory=dict)
    last_seen: float | None = None  # nodata: when a matching series was last present

    @classmethod
    def of(cls, rule: RuleDef) -> _Compiled:
        return cls(rule, rule.selector, Condition.of(rule))

    def owns(self, series: str) -> bool:
        """Whether an episode on `series` belongs to this rule as it is now."""
        if self.rule.kind == "nodata":
            return series == self.selector.text
        return series_name(series) == self.selector.name and self.selector.matches(parse_series(series)[1])


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class LogDispatcher:
    """A Dispatcher that only logs: for a panel (or a benchmark) without notifiers."""

    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        logger.info("alert {} ({} notifiers)", message.subject, len(notifier_ids))


class AlertEngine:
    def __init__(
        self,
        db: Database | None,
        dispatcher: Dispatcher,
        *,
        audit: AuditService | None = None,
        base_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`db=None` runs without persistence (benchmarks); `clock` gives "now" for rule changes, acks
        and listings (evaluation uses each sample's own timestamp)."""
        self.db = db
        self.dispatcher = dispatcher
        self.audit = audit
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        # Fired (on the event loop when there is one) whenever the firing set or an ack changes.
        self.changed: Event[AlertCounts] = Event()
        self._lock = threading.RLock()
        self._compiled: dict[int, _Compiled] = {}
        self._threshold: list[_Compiled] = []
        self._nodata: list[_Compiled] = []
        self._by_name: dict[str, list[_Compiled]] = {}
        self._keys: frozenset[str] | None = None  # the series set the matching lists were built for
        self._labels: dict[str, dict[str, str]] = {}
        self._silences: list[SilenceDef] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending_io: set[asyncio.Future[None]] = set()

    # -- configuration -----------------------------------------------------------------------------

    def set_rules(self, rules: Iterable[RuleDef]) -> None:
        """Recompile. Pending episodes survive only when the rule's condition is unchanged; firing ones
        stay while their series still matches (the next sample re-checks them against the new rule);
        a disabled or deleted rule resolves all of its firing episodes now."""
        rules = list(rules)
        ids = {rule.id for rule in rules}
        ended: list[tuple[_Compiled, str, Track, str]] = []
        with self._lock:
            old = self._compiled
            new: dict[int, _Compiled] = {}
            for rule in sorted(rules, key=lambda r: r.id):
                if not rule.enabled:
                    continue
                compiled = _Compiled.of(rule)
                prev = old.get(rule.id)
                if prev is not None:
                    same = prev.rule.same_condition(rule)
                    for sid, track in prev.tracks.items():
                        if track.fired_at is None:
                            if same:
                                compiled.tracks[sid] = track
                        elif prev.rule.kind == rule.kind and compiled.owns(sid):
                            compiled.tracks[sid] = track
                        else:
                            ended.append((compiled, sid, track, "rule changed"))
                    if same or (
                        rule.kind == prev.rule.kind == "nodata" and compiled.owns(prev.selector.text)
                    ):
                        compiled.last_seen = prev.last_seen  # a no-data rule keeps counting its silence
                new[rule.id] = compiled
            for rule_id, prev in old.items():
                if rule_id not in new:
                    reason = "rule disabled" if rule_id in ids else "rule deleted"
                    ended.extend(
                        (prev, sid, t, reason) for sid, t in prev.tracks.items() if t.fired_at is not None
                    )
            self._install(new)
            now = self.clock()
            for compiled, sid, track, reason in ended:
                self._resolve(compiled, sid, track, now, track.value, reason=reason)
        if ended:
            self._emit_changed()

    def _install(self, compiled: dict[int, _Compiled]) -> None:
        self._compiled = compiled
        self._threshold = [c for c in compiled.values() if c.rule.kind != "nodata"]
        self._nodata = [c for c in compiled.values() if c.rule.kind == "nodata"]
        self._by_name = {}
        for c in compiled.values():
            self._by_name.setdefault(c.selector.name, []).append(c)
        self._keys = None  # rebuild the matching lists at the next sample

    def set_silences(self, silences: Iterable[SilenceDef]) -> None:
        self._silences = list(silences)

    def rules(self) -> list[RuleDef]:
        """The enabled rules as compiled."""
        return [c.rule for c in self._compiled.values()]

    def restore(self) -> int:
        """Load the firing episodes from the database (at start, after `set_rules`). An episode whose
        rule is gone, disabled or no longer matches its series is resolved silently. Returns how many
        episodes were restored."""
        if self.db is None:
            return 0
        with self.db.session() as session:
            rows = session.exec(
                select(Alert).where(Alert.state == "firing").order_by(col(Alert.fired_at).desc())
            ).all()
        stale: list[int] = []
        restored = 0
        with self._lock:
            for row in rows:
                compiled = self._compiled.get(row.rule_id)
                if compiled is None or not compiled.owns(row.series) or row.series in compiled.tracks:
                    stale.append(row.id or 0)
                    continue
                value = row.value if row.value is not None else float("nan")
                fired = row.fired_at.timestamp()
                compiled.tracks[row.series] = Track(
                    since=row.pending_since.timestamp(),
                    value=value,
                    peak=value,
                    fired_at=fired,
                    alert_id=row.id,
                    notified_at=row.last_notified_at.timestamp() if row.last_notified_at else None,
                    acked_by=row.acked_by,
                )
                if compiled.rule.kind == "nodata":
                    silent = value if value == value else float(compiled.rule.for_seconds)
                    compiled.last_seen = fired - silent
                restored += 1
        if stale:
            with self.db.session() as session:
                session.execute(
                    update(Alert)
                    .where(col(Alert.id).in_(stale))
                    .values(state="resolved", resolved_at=_dt(self.clock()))
                )
                session.commit()
            logger.info("resolved {} firing alerts whose rule is gone or changed", len(stale))
        if restored:
            logger.info("restored {} firing alerts", restored)
        return restored

    # -- evaluation --------------------------------------------------------------------------------

    def on_sample(self, sample: Sample) -> None:
        """The metrics bus subscriber (on the event loop): database writes go to a worker thread."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        try:
            self.evaluate(sample)
        except Exception:  # the sampler loop must survive anything a rule does
            logger.exception("alert evaluation failed")

    def evaluate(self, sample: Sample) -> None:
        """Check one sample against every rule. Callable without a loop (tests, benchmarks): database
        writes and messages then happen before it returns."""
        changed = False
        with self._lock:
            values = sample.values
            keys = self._keys
            if keys is None or len(values) != len(keys) or values.keys() != keys:
                self._refresh(values)
            ts = sample.ts
            for compiled in self._threshold:
                matched = compiled.matched
                if not matched:
                    continue
                tracks = compiled.tracks
                holds = compiled.cond.holds
                threshold = compiled.cond.threshold
                for sid in matched:
                    value = values[sid]
                    track = tracks.get(sid)
                    if track is None and not holds(value, threshold):
                        continue  # advance()'s first case, inlined: inactive and not holding
                    changed |= self._step(compiled, sid, track, value, ts)
            for compiled in self._nodata:
                if compiled.matched or compiled.last_seen is None:
                    compiled.last_seen = ts
                key = compiled.selector.text
                changed |= self._step(compiled, key, compiled.tracks.get(key), ts - compiled.last_seen, ts)
        if changed:
            self._emit_changed()

    def _refresh(self, values: Mapping[str, float]) -> None:
        """Rebuild each rule's list of matching series for a new set of series."""
        by_name: dict[str, list[str]] = {}
        for sid in values:
            by_name.setdefault(series_name(sid), []).append(sid)
        if len(self._labels) > 50_000:
            self._labels.clear()
        for compiled in self._compiled.values():
            compiled.matched = []
        for name, rules in self._by_name.items():
            sids = sorted(by_name.get(name, ()))
            for compiled in rules:
                if compiled.selector.matchers:
                    compiled.matched = [
                        sid for sid in sids if compiled.selector.matches(self._labels_of(sid))
                    ]
                else:
                    compiled.matched = sids
        # A pending timer does not survive a gap in its series: when the series comes back it must
        # hold for_seconds again. (A firing episode stays, see the module docstring.)
        for compiled in self._threshold:
            gone = [
                sid for sid, track in compiled.tracks.items() if track.fired_at is None and sid not in values
            ]
            for sid in gone:
                del compiled.tracks[sid]
        self._keys = frozenset(values)

    def _labels_of(self, sid: str) -> dict[str, str]:
        labels = self._labels.get(sid)
        if labels is None:
            labels = self._labels[sid] = parse_series(sid)[1]
        return labels

    def _step(self, compiled: _Compiled, sid: str, track: Track | None, value: float, ts: float) -> bool:
        after, transition = advance(compiled.cond, track, value, ts)
        if transition is None:
            if after is None:
                if track is not None:
                    del compiled.tracks[sid]
            elif track is None:
                compiled.tracks[sid] = after
            elif after.fired_at is not None:
                self._renotify(compiled, sid, after, ts)
            return False
        if transition == FIRE:
            assert after is not None
            compiled.tracks[sid] = after
            self._fire(compiled, sid, after, ts)
            return True
        assert track is not None
        del compiled.tracks[sid]
        self._resolve(compiled, sid, track, ts, value)
        return True

    # -- transitions -------------------------------------------------------------------------------

    def _series_labels(self, compiled: _Compiled, sid: str) -> dict[str, str]:
        if compiled.rule.kind == "nodata":
            return dict(compiled.selector.matchers)
        return dict(self._labels_of(sid))

    def silenced(self, rule: RuleDef, labels: Mapping[str, str], ts: float) -> bool:
        """Whether an active silence matches an alert of `rule` with these series labels at `ts`."""
        if not self._silences:
            return False
        full = {**labels, "alertname": rule.name, "metric": Selector.parse(rule.metric).name}
        return any(s.active(ts) and s.matches(full) for s in self._silences)

    def _message(
        self,
        compiled: _Compiled,
        sid: str,
        track: Track,
        state: str,
        value: float,
        *,
        ended: float | None = None,
        repeat: bool = False,
        reason: str = "",
    ) -> AlertMessage:
        rule = compiled.rule
        assert track.fired_at is not None
        return AlertMessage(
            rule_id=rule.id or None,
            rule_name=rule.name,
            state=state,
            severity=rule.severity,
            metric=sid,
            labels=self._series_labels(compiled, sid),
            value=None if value != value else value,
            threshold=compiled.cond.threshold,
            started_at=_dt(track.fired_at),
            ended_at=_dt(ended) if ended is not None else None,
            url=self.base_url + "/alerts",
            description=rule.description,
            repeat=repeat,
            extra={"reason": reason} if reason else {},
        )

    def _send(
        self, message: AlertMessage, track: Track, notifiers: Sequence[int], *, deleted: bool = False
    ) -> None:
        """Runs after the episode's database write, so the message can carry the alert's id."""
        alert_id = None if deleted else track.alert_id
        if alert_id is not None:
            message = replace(message, alert_id=alert_id, url=f"{self.base_url}/alerts?id={alert_id}")
        try:
            self.dispatcher.dispatch(message, list(notifiers))
        except Exception:
            logger.exception("dispatching {} failed", message.subject)

    def _fire(self, compiled: _Compiled, sid: str, track: Track, ts: float) -> None:
        assert track.fired_at is not None
        rule = compiled.rule
        labels = self._series_labels(compiled, sid)
        notify = not self.silenced(rule, labels, ts)
        if notify:
            track.notified_at = ts
        message = self._message(compiled, sid, track, "firing", track.value) if notify else None
        row = Alert(
            rule_id=rule.id,
            series=sid,
            labels=json.dumps(labels, ensure_ascii=False),
            state="firing",
            severity=rule.severity,
            value=track.value if track.value == track.value else None,
            threshold=compiled.cond.threshold,
            pending_since=_dt(track.since),
            fired_at=_dt(track.fired_at),
            last_notified_at=_dt(ts) if notify else None,
        )
        db = self.db

        def store() -> None:
            if db is None or not rule.id:
                return
            with db.session() as session:
                session.add(row)
                session.commit()
                track.alert_id = row.id

        def then() -> None:
            if message is not None:
                self._send(message, track, rule.notifiers)

        self._io(store, then)

    def _resolve(
        self, compiled: _Compiled, sid: str, track: Track, ts: float, value: float, *, reason: str = ""
    ) -> None:
        rule = compiled.rule
        deleted = reason == "rule deleted"
        message = None
        if track.notified_at is not None:
            message = self._message(compiled, sid, track, "resolved", value, ended=ts, reason=reason)
        db = self.db
        final = value if value == value else None

        def store() -> None:
            if db is None or deleted or track.alert_id is None:
                return
            with db.session() as session:
                session.execute(
                    update(Alert)
                    .where(col(Alert.id) == track.alert_id)
                    .values(state="resolved", resolved_at=_dt(ts), value=final)
                )
                session.commit()

        def then() -> None:
            if message is not None:
                self._send(message, track, rule.notifiers, deleted=deleted)

        self._io(store, then)

    def _renotify(self, compiled: _Compiled, sid: str, track: Track, ts: float) -> None:
        """A firing episode seen again: its first message if a silence held it back and has ended, or
        a repeat every `repeat_seconds` (not once acknowledged)."""
        if track.acked_by is not None:
            return
        rule = compiled.rule
        if track.notified_at is None:
            repeat = False
        elif rule.repeat_seconds and ts - track.notified_at >= rule.repeat_seconds:
            repeat = True
        else:
            return
        if self.silenced(rule, self._series_labels(compiled, sid), ts):
            return
        track.notified_at = ts
        message = self._message(compiled, sid, track, "firing", track.value, repeat=repeat)
        db = self.db

        def store() -> None:
            if db is None or track.alert_id is None:
                return
            with db.session() as session:
                session.execute(
                    update(Alert).where(col(Alert.id) == track.alert_id).values(last_notified_at=_dt(ts))
                )
                session.commit()

        self._io(store, lambda: self._send(message, track, rule.notifiers))

    # -- background writes -------------------------------------------------------------------------

    def _io(self, job: Callable[[], None], then: Callable[[], None]) -> None:
        """Run `job` (database) off the event loop, then `then` (dispatch) back on it, in order.
        Without a running loop both run here and now."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._run(job)
            self._run(then)
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._submit(loop, job, then)
        else:
            loop.call_soon_threadsafe(self._submit, loop, job, then)

    def _submit(
        self, loop: asyncio.AbstractEventLoop, job: Callable[[], None], then: Callable[[], None]
    ) -> None:
        if self._executor is None:  # one thread: writes stay in order (an insert before its update)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts")
        future = loop.run_in_executor(self._executor, self._run, job)
        self._pending_io.add(future)

        def done(finished: asyncio.Future[None]) -> None:
            self._pending_io.discard(finished)
            self._run(then)
            if not self._pending_io:
                # Again once the rows are written, so a page that re-reads the database on `changed`
                # sees the episode that just fired or resolved.
                self._emit_changed()

        future.add_done_callback(done)

    @staticmethod
    def _run(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            logger.exception("alert engine: a write or dispatch failed")

    async def drain(self) -> None:
        """Wait for every queued write and its message (tests, shutdown)."""
        while self._pending_io:
            await asyncio.gather(*list(self._pending_io), return_exceptions=True)
            await asyncio.sleep(0)  # let the done callbacks (the dispatches) run

    def prune_resolved(self, before: datetime) -> int:
        """Delete resolved episodes that ended before `before`, their delivery logs with them (ON DELETE
        CASCADE); firing episodes are never touched. Returns how many went."""
        if self.db is None:
            return 0
        with self.db.session() as session:
            result = session.execute(
                delete(Alert).where(col(Alert.state) == "resolved", col(Alert.resolved_at) < before)
            )
            session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _emit_changed(self) -> None:
        counts = self.counts()
        loop = self._loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if not on_loop:
                loop.call_soon_threadsafe(self.changed.emit, counts)
                return
        self.changed.emit(counts)

    # -- reading -----------------------------------------------------------------------------------

    def counts(self) -> AlertCounts:
        with self._lock:
            tracks = [t for c in self._compiled.values() for t in c.tracks.values()]
        firing = [t for t in tracks if t.fired_at is not None]
        return AlertCounts(
            firing=len(firing),
            pending=len(tracks) - len(firing),
            unacknowledged=sum(1 for t in firing if t.acked_by is None),
        )

    def _live(self) -> dict[tuple[int, str], tuple[_Compiled, Track]]:
        with self._lock:
            return {(c.rule.id, sid): (c, t) for c in self._compiled.values() for sid, t in c.tracks.items()}

    def alerts(
        self, state: str | None = None, *, limit: int = 100, rule_id: int | None = None
    ) -> list[AlertView]:
        """Pending (from memory), firing and resolved (from the database), newest first within each;
        `state=None` lists them all in that order."""
        if state not in (None, "pending", "firing", "resolved"):
            raise Invalid("state must be pending, firing or resolved")
        limit = max(1, min(limit, MAX_LIMIT))
        now = self.clock()
        live = self._live()
        views: list[AlertView] = []
        if state in (None, "pending"):
            for (rid, sid), (compiled, track) in live.items():
                if track.fired_at is None and (rule_id is None or rid == rule_id):
                    views.append(self._pending_view(compiled, sid, track, now))
            views.sort(key=lambda v: v.since, reverse=True)
        if self.db is not None:
            for wanted in ("firing", "resolved"):
                if state not in (None, wanted) or len(views) >= limit:
                    continue
                order = col(Alert.fired_at) if wanted == "firing" else col(Alert.resolved_at)
                query = select(Alert, AlertRule.name).join(AlertRule).where(Alert.state == wanted)
                if rule_id is not None:
                    query = query.where(Alert.rule_id == rule_id)
                with self.db.session() as session:
                    rows = session.exec(query.order_by(order.desc()).limit(limit - len(views))).all()
                views.extend(self._row_view(row, name, live, now) for row, name in rows)
        return views[:limit]

    def get(self, alert_id: int) -> AlertView:
        if self.db is None:
            raise NotFound(f"no alert with id {alert_id}")
        with self.db.session() as session:
            found = session.exec(
                select(Alert, AlertRule.name).join(AlertRule).where(Alert.id == alert_id)
            ).first()
        if found is None:
            raise NotFound(f"no alert with id {alert_id}")
        return self._row_view(found[0], found[1], self._live(), self.clock())

    def _pending_view(self, compiled: _Compiled, sid: str, track: Track, now: float) -> AlertView:
        labels = self._series_labels(compiled, sid)
        return AlertView(
            id=None,
            key=f"{compiled.rule.id}:{sid}",
            rule_id=compiled.rule.id,
            rule_name=compiled.rule.name,
            severity=compiled.rule.severity,
            series=sid,
            labels=labels,
            state="pending",
            value=track.value,
            threshold=compiled.cond.threshold,
            since=_dt(track.since),
            fired_at=None,
            resolved_at=None,
            acked_by=None,
            acked_at=None,
            ack_comment="",
            silenced=self.silenced(compiled.rule, labels, now),
        )

    def _row_view(
        self, row: Alert, rule_name: str, live: Mapping[tuple[int, str], tuple[_Compiled, Track]], now: float
    ) -> AlertView:
        labels = json.loads(row.labels or "{}")
        value = row.value
        silenced = False
        current = live.get((row.rule_id, row.series)) if row.state == "firing" else None
        if current is not None and current[1].alert_id in (row.id, None):
            value = current[1].value if current[1].value == current[1].value else value
            silenced = self.silenced(current[0].rule, labels, now)
        return AlertView(
            id=row.id,
            key=f"{row.rule_id}:{row.series}",
            rule_id=row.rule_id,
            rule_name=rule_name,
            severity=row.severity,
            series=row.series,
            labels=labels,
            state=row.state,
            value=value,
            threshold=row.threshold,
            since=row.pending_since,
            fired_at=row.fired_at,
            resolved_at=row.resolved_at,
            acked_by=row.acked_by,
            acked_at=row.acked_at,
            ack_comment=row.ack_comment,
            silenced=silenced,
        )

    # -- acknowledging -----------------------------------------------------------------------------

    def ack(self, actor: Principal | None, alert_id: int, comment: str = "", *, ip: str = "") -> AlertView:
        """Acknowledge a firing alert (operators and admins): records who and when, stops repeats.
        404 for an unknown id, 409 for a resolved or already acknowledged alert."""
        if self.db is None:
            raise NotFound(f"no alert with id {alert_id}")
        if actor is not None:
            if self.audit is not None:
                self.audit.authorize(
                    actor,
                    Role.OPERATOR,
                    attempted="alert.ack",
                    target_type="alert",
                    target_id=alert_id,
                    ip=ip,
                )
            else:
                authorize(actor, Role.OPERATOR)
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise Invalid(f"comment: at most {MAX_COMMENT} characters")
        who = (actor.username if actor else "system")[:64]
        with self.db.session() as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"no alert with id {alert_id}")
            if row.state != "firing":
                raise Conflict(f"alert {alert_id} has resolved; only a firing alert can be acknowledged")
            if row.acked_by:
                raise Conflict(f"alert {alert_id} was already acknowledged by {row.acked_by}")
            row.acked_by, row.acked_at, row.ack_comment = who, _dt(self.clock()), comment
            session.add(row)
            if self.audit is not None:
                rule = session.get(AlertRule, row.rule_id)
                self.audit.record(
                    session,
                    actor=actor,
                    action="alert.ack",
                    outcome="success",
                    target_type="alert",
                    target_id=alert_id,
                    target_label=f"{rule.name if rule else row.rule_id} on {row.series}"[:256],
                    details={"rule_id": row.rule_id, "series": row.series, "comment": comment},
                    ip=ip,
                )
            session.commit()
        with self._lock:
            compiled = self._compiled.get(row.rule_id)
            track = compiled.tracks.get(row.series) if compiled else None
            if track is not None and track.alert_id in (alert_id, None) and track.fired_at is not None:
                track.acked_by = who
        self._emit_changed()
        return self.get(alert_id)


# == composition ======================================================================================


@dataclass
class Alerting:
    """Rules, silences and the engine, as `Services.alerts`."""

    rules: RuleService
    silences: SilenceService
    engine: AlertEngine
    history: HistoryStore

    def preview(
        self, actor: Principal | None, data: RuleIn | Mapping[str, Any], *, hours: float = 24, ip: str = ""
    ) -> Preview:
        """What `data` (a rule, saved or not) would have fired over the last `hours` (operators)."""
        if actor is not None:
            self.rules.require_operator(actor, "alert.rule.preview", ip=ip)
        return preview(self.rules.definition(data), self.history, hours=hours, now=self.engine.clock())

    def close(self) -> None:
        self.engine.close()


def build_alerting(
    db: Database, audit: AuditService, metrics: MetricsService, *, base_url: str, dispatcher: Dispatcher
) -> Alerting:
    """Wire rules and silences into the engine, restore firing episodes, and subscribe the engine to
    every sample of the metrics bus."""
    rules = RuleService(db, audit, metrics.specs)
    silences = SilenceService(db, audit)
    engine = AlertEngine(db, dispatcher, audit=audit, base_url=base_url)
    rules.subscribe(engine.set_rules)
    silences.subscribe(engine.set_silences)
    engine.restore()
    metrics.bus.subscribe(engine.on_sample)
    return Alerting(rules=rules, silences=silences, engine=engine, history=metrics.history)


# == benchmarking =====================================================================================


def synthetic_rules(series: Sequence[str], count: int) -> list[RuleDef]:
    """`count` enabled rules spread over `series` (each on one exact series id, every fifth on a
    whole metric), with thresholds that never fire: the steady-state cost the benchmark measures."""
    if not series:
        raise ValueError("no series to build rules on")
    rules = []
    for i in range(count):
        sid = series[i % len(series)]
        metric = series_name(sid) if i % 5 == 4 else sid
        op = ">" if i % 2 else "<"
        rules.append(
            RuleDef(
                id=i + 1,
                name=f"bench {i}",
                metric=metric,
                op=op,
                threshold=1e18 if op == ">" else -1e18,
                for_seconds=60,
            )
        )
    return rules


def time_evaluate(rules: Sequence[RuleDef], samples: Sequence[Sample], rounds: int = 100) -> float:
    """Mean seconds per `evaluate` of a standalone engine (no database) over `rounds` passes of
    `samples` (give them rising timestamps)."""
    engine = AlertEngine(None, LogDispatcher())
    engine.set_rules(rules)
    engine.evaluate(samples[0])  # builds the matching lists once, as the first live sample does
    started = time.perf_counter()
    runs = 0
    for _ in range(rounds):
        for sample in samples:
            engine.evaluate(sample)
            runs += 1
    return (time.perf_counter() - started) / runs
