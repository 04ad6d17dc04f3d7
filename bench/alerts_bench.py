"""(g) Alert evaluation: what `AlertEngine.evaluate` costs per sample for 0 to 5,000 rules over this
host's real series, standalone (a store that keeps nothing; thresholds that never fire, the steady
state), plus the case where every rule is firing. Each figure is the median of several timed passes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nox_ui.alerts.rules import RuleDef
    from nox_ui.alerts.store import FiredEpisode, StoredFiring
    from nox_ui.metrics.sampler import Sample

RULE_COUNTS = (0, 100, 1000, 5000)
SAMPLES = 30
REPEATS = 5


def _samples() -> list[Any]:
    """SAMPLES samples with this host's series: two real ones, then the second with rising timestamps."""
    from nox_ui.metrics.collectors import default_collectors
    from nox_ui.metrics.sampler import Sample, Sampler

    sampler = Sampler(default_collectors())
    sampler.sample()
    time.sleep(0.2)
    real = sampler.sample()
    return [Sample(ts=real.ts + i, values=dict(real.values), duration=0.0) for i in range(SAMPLES)]


class NoStore:
    """An `AlertStore` that keeps nothing: the benchmark measures evaluation, not SQLite."""

    def __init__(self) -> None:
        self.fired = 0

    def insert_firing(self, episode: FiredEpisode) -> int:
        self.fired += 1
        return self.fired

    def mark_notified(self, alert_id: int, at: datetime) -> None:
        """Nothing is stored, so there is nothing to mark."""

    def resolve(self, alert_id: int, at: datetime, value: float | None) -> None:
        """Nothing is stored, so there is nothing to resolve."""

    def firing(self) -> list[StoredFiring]:
        return []

    def resolve_stale(self, alert_ids: Sequence[int], at: datetime) -> None:
        """Nothing is stored, so nothing is stale."""


def synthetic_rules(series: Sequence[str], count: int) -> list[RuleDef]:
    """`count` enabled rules spread over `series` (each on one exact series id, every fifth on a
    whole metric), with thresholds that never fire: the steady-state cost the benchmark measures."""
    from nox_ui.alerts.rules import RuleDef
    from nox_ui.metrics.series import series_name

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
    """Mean seconds per `evaluate` of a standalone engine (a store that keeps nothing) over `rounds`
    passes of `samples` (give them rising timestamps)."""
    from nox_ui.alerts.evaluation import AlertEngine, LogDispatcher

    engine = AlertEngine(NoStore(), LogDispatcher())
    engine.set_rules(rules)
    engine.evaluate(samples[0])  # builds the matching lists once, as the first live sample does
    started = time.perf_counter()
    runs = 0
    for _ in range(rounds):
        for sample in samples:
            engine.evaluate(sample)
            runs += 1
    return (time.perf_counter() - started) / runs


def _median_seconds(rules: list[Any], samples: list[Any], rounds: int) -> float:
    return statistics.median(time_evaluate(rules, samples, rounds=rounds) for _ in range(REPEATS))


def run() -> dict[str, Any]:
    from loguru import logger

    from nox_ui.alerts.preview import matching_series

    logger.disable("nox_ui.alerts")  # the firing case would log each of its 1,000 alerts per pass
    samples = _samples()
    series = sorted(samples[0].values)
    result: dict[str, Any] = {"series": len(series), "per_rules": {}}
    for count in RULE_COUNTS:
        rules = synthetic_rules(series, count) if count else []
        pairs = sum(len(matching_series(rule, series)) for rule in rules)
        rounds = 20 if count <= 1000 else 5
        seconds = _median_seconds(rules, samples, rounds)
        result["per_rules"][str(count)] = {"us": seconds * 1e6, "pairs": pairs}
    # Every rule firing: thresholds every value crosses, fired on the first sample
    firing_rules = [
        replace(rule, op=">=", threshold=-1e18, for_seconds=0) for rule in synthetic_rules(series, 1000)
    ]
    result["firing_1000_us"] = _median_seconds(firing_rules, samples, 10) * 1e6
    logger.enable("nox_ui.alerts")
    return result
