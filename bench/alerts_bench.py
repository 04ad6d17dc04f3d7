"""(g) Alert evaluation: what `AlertEngine.evaluate` costs per sample for 0 to 5,000 rules over this
host's real series, standalone (no database; thresholds that never fire, the steady state), plus the
case where every rule is firing. Each figure is the median of several timed passes."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

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


def _median_seconds(rules: list[Any], samples: list[Any], rounds: int) -> float:
    from nox_ui.alerts.engine import time_evaluate

    return statistics.median(time_evaluate(rules, samples, rounds=rounds) for _ in range(REPEATS))


def run() -> dict[str, Any]:
    from loguru import logger

    from nox_ui.alerts.engine import matching_series, synthetic_rules

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
