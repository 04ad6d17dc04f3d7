"""The preview: which episodes a rule (saved or not) would have fired over stored history.

Each series' one-minute averages are replayed through the same state machine as the engine
(`state.py`), so the preview and live evaluation cannot disagree about what a rule means.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from nox_ui.alerts.rules import RuleDef
from nox_ui.alerts.state import Condition, Episode, replay, silence_series
from nox_ui.errors import Invalid
from nox_ui.metrics.history import HistoryStore
from nox_ui.metrics.series import parse_series, series_name

PREVIEW_STEP = 60  # the minute tier
PREVIEW_CHUNK = 1000 * PREVIEW_STEP  # HistoryStore answers at most ~1,000 points per query
PREVIEW_MAX_SERIES = 100
PREVIEW_MAX_HOURS = 7 * 24


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
