"""The pure state machine of alerting: one per (rule, series), no I/O, no clock.

The engine (`evaluation.py`) and the preview (`preview.py`) both run it, so what the preview shows for
a recorded series is what the engine does with the same points.

`advance`, for a rule `value OP threshold` held `for_seconds`:

    inactive ──holds──► pending(since=ts) ──held ≥ for_seconds──► firing ──clears──► resolved
                         └──stops holding──► inactive (silently)

`for_seconds = 0` fires on the first sample that holds. A firing episode *clears* when
`not (value OP clear)`, `clear` being `clear_threshold` when set (hysteresis: `> 90` clearing at 80
stays firing between 80 and 90 and resolves at 80 or below) and the threshold otherwise. A NaN value
changes nothing.

A `nodata` rule is the same machine over a derived series (`silence_series`): the seconds since a
sample last carried any series matching the selector, firing when that reaches `for_seconds`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from nox_ui.alerts.rules import OPS, RuleDef


class AlertState(StrEnum):
    """Where an alert episode is: pending (in memory only), firing, resolved (both stored)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


FIRE: Final = "fire"
RESOLVE: Final = "resolve"
Transition = Literal["fire", "resolve"] | None


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
