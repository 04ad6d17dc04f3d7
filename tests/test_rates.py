"""Rate strings, and the counters on the `limits` library: an atomic hit that refuses past the rate."""

from __future__ import annotations

import pytest

from nox_ui.rates import FixedWindows, Limiter, Rate, parse_rates


def test_rates_parse_in_the_usual_notations() -> None:
    assert parse_rates("600/minute") == [Rate(600, 60)]
    assert parse_rates("10 per second; 1000/hour") == [Rate(10, 1), Rate(1000, 3600)]
    assert parse_rates("100/5 minutes,5/day") == [Rate(100, 300), Rate(5, 86400)]


@pytest.mark.parametrize(
    "text", ["", "lots", "600", "600/fortnight", "0/minute", "-1/second", "10/0 seconds", "9" * 40 + "/s"]
)
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rates(text)


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
def test_a_limiter_refuses_past_the_amount_per_key_until_cleared(strategy: str) -> None:
    limiter = Limiter(strategy)  # type: ignore[arg-type]
    rate = Rate(3, 60)
    assert [limiter.hit(rate, "k") for _ in range(4)] == [True, True, True, False]
    assert 1 <= limiter.retry_after(rate, "k") <= 60
    assert limiter.hit(rate, "other key")
    limiter.clear(rate, "k")
    assert limiter.hit(rate, "k")
    limiter.reset()
    assert all(limiter.hit(rate, "k") for _ in range(3))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_fixed_windows_refuse_past_the_amount_until_the_next_window() -> None:
    clock = Clock()
    windows = FixedWindows(clock)
    rate = Rate(2, 60)
    clock.now = 60 * 1000 + 15  # 45 s before the window ends
    assert [windows.hit(rate, "a") for _ in range(3)] == [0, 0, 45]
    assert windows.hit(rate, "b") == 0
    clock.now += 45
    assert windows.hit(rate, "a") == 0
