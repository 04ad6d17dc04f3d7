"""Evaluation: every sample from the metrics bus is checked against every enabled rule.

`AlertEngine` compiles rules into a per-metric-name index, keeps one `Track` (see `state.py`) per
pending or firing (rule, series) in memory, writes episodes through an `AlertStore` once they fire
(in a worker thread when an event loop runs), and hands messages to the `Dispatcher`.

A series that disappears from the samples keeps a firing alert firing (a pending one is dropped, so
the series must hold `for_seconds` again when it returns) until its value is seen again, the rule
changes so that it no longer matches, or the rule is disabled or deleted (which resolves every firing
episode of the rule at once).

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

`changed` (a core `Signal`, emitted on the event loop when there is one) carries the new counts
whenever the firing set or an acknowledgement changes.

Health: the engine is the supervisor's job "alerts". An evaluation that raises or a write that fails
(retried while the database is busy) makes it failing; the next successful write, or evaluation when
no write failed, makes it running again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from loguru import logger

from nox_ui.alerts.messages import AlertMessage, Dispatcher
from nox_ui.alerts.rules import RuleDef, Selector
from nox_ui.alerts.silences import SilenceDef
from nox_ui.alerts.state import FIRE, Condition, Track, advance
from nox_ui.alerts.store import AlertStore, FiredEpisode
from nox_ui.db import retry_busy
from nox_ui.metrics.sampler import Sample
from nox_ui.metrics.series import parse_series, series_name
from nox_ui.signals import Signal
from nox_ui.supervisor import Supervisor

JOB = "alerts"


@dataclass(frozen=True)
class AlertCounts:
    firing: int
    pending: int
    unacknowledged: int  # firing and not acknowledged: what the badge shows


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
        store: AlertStore,
        dispatcher: Dispatcher,
        *,
        base_url: str = "",
        clock: Callable[[], float] = time.time,
        supervisor: Supervisor | None = None,
    ) -> None:
        """`clock` gives "now" for rule changes, acks and listings (evaluation uses each sample's own
        timestamp)."""
        self.supervisor = supervisor or Supervisor()
        self._write_failed = False  # the last write failed: an evaluation alone does not clear that
        self.store = store
        self.dispatcher = dispatcher
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        # Emitted (on the event loop when there is one) whenever the firing set or an ack changes.
        self.changed: Signal[AlertCounts] = Signal("alerts.changed")
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
        rows = self.store.firing()
        stale: list[int] = []
        restored = 0
        with self._lock:
            for row in rows:
                compiled = self._compiled.get(row.rule_id)
                if compiled is None or not compiled.owns(row.series) or row.series in compiled.tracks:
                    stale.append(row.id)
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
            self.store.resolve_stale(stale, _dt(self.clock()))
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
        except Exception as exc:  # the sampler loop must survive anything a rule does
            self.supervisor.report(JOB, exc)
        else:
            if not self._write_failed:
                self.supervisor.report(JOB, None)

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
        return self.series_labels(compiled.rule, sid)

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
        episode = FiredEpisode(
            rule_id=rule.id,
            series=sid,
            labels=labels,
            severity=rule.severity,
            value=track.value if track.value == track.value else None,
            threshold=compiled.cond.threshold,
            pending_since=_dt(track.since),
            fired_at=_dt(track.fired_at),
            last_notified_at=_dt(ts) if notify else None,
        )
        writes = self.store

        def store() -> None:
            if rule.id:  # an unsaved rule (id 0) has no row to refer to
                track.alert_id = writes.insert_firing(episode)

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
        writes = self.store
        final = value if value == value else None

        def store() -> None:
            if not deleted and track.alert_id is not None:
                writes.resolve(track.alert_id, _dt(ts), final)

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
        writes = self.store

        def store() -> None:
            if track.alert_id is not None:
                writes.mark_notified(track.alert_id, _dt(ts))

        self._io(store, lambda: self._send(message, track, rule.notifiers))

    # -- background writes -------------------------------------------------------------------------

    def _io(self, job: Callable[[], None], then: Callable[[], None]) -> None:
        """Run `job` (database) off the event loop, then `then` (dispatch) back on it, in order.
        Without a running loop both run here and now."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._write(job)
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
        future = loop.run_in_executor(self._executor, self._write, job)
        self._pending_io.add(future)

        def done(finished: asyncio.Future[None]) -> None:
            self._pending_io.discard(finished)
            self._run(then)
            if not self._pending_io:
                # Again once the rows are written, so a page that re-reads the database on `changed`
                # sees the episode that just fired or resolved.
                self._emit_changed()

        future.add_done_callback(done)

    def _write(self, job: Callable[[], None]) -> None:
        """One database write (in order, in the worker thread), tried again while the database is busy."""
        try:
            retry_busy(job)
        except Exception as exc:
            self._write_failed = True
            self.supervisor.report(JOB, exc)
        else:
            if self._write_failed:
                self._write_failed = False
                self.supervisor.report(JOB, None)

    @staticmethod
    def _run(step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            logger.exception("alert engine: a dispatch failed")

    async def drain(self) -> None:
        """Wait for every queued write and its message (tests, shutdown)."""
        while self._pending_io:
            await asyncio.gather(*list(self._pending_io), return_exceptions=True)
            await asyncio.sleep(0)  # let the done callbacks (the dispatches) run

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _emit_changed(self) -> None:
        self.changed.emit_on(self._loop, self.counts())

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

    def live(self) -> dict[tuple[int, str], tuple[RuleDef, Track]]:
        """A snapshot of every pending and firing episode, by (rule id, series)."""
        with self._lock:
            return {
                (c.rule.id, sid): (c.rule, t) for c in self._compiled.values() for sid, t in c.tracks.items()
            }

    def series_labels(self, rule: RuleDef, sid: str) -> dict[str, str]:
        """The labels an alert of `rule` on `sid` carries (a nodata rule: its selector's)."""
        if rule.kind == "nodata":
            return dict(rule.selector.matchers)
        return dict(self._labels_of(sid))

    def acknowledged(self, rule_id: int, series: str, alert_id: int, who: str) -> None:
        """An ack was stored: stop the episode's repeats, and tell the subscribers."""
        with self._lock:
            compiled = self._compiled.get(rule_id)
            track = compiled.tracks.get(series) if compiled else None
            if track is not None and track.alert_id in (alert_id, None) and track.fired_at is not None:
                track.acked_by = who
        self._emit_changed()
