"""The in-memory rate limits: parsing rate strings, the sliding window of sign-in failures and the
fixed windows of the API limit, on an injected clock."""

from __future__ import annotations

import pytest

from nox_ui.ratelimits import FixedWindows, Rate, SlidingWindow, parse_rates


def test_rates_parse_in_the_usual_notations() -> None:
    assert parse_rates("600/minute") == [Rate(600, 60)]
    assert parse_rates("10 per second; 1000/hour") == [Rate(10, 1), Rate(1000, 3600)]
    assert parse_rates("100/5 minutes,5/day") == [Rate(100, 300), Rate(5, 86400)]


@pytest.mark.parametrize(
    "text", ["", "lots", "600", "600/fortnight", "0/minute", "-1/second", "10/0 seconds"]
)
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rates(text)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts_the_last_seconds_exactly() -> None:
    clock = Clock()
    window = SlidingWindow(clock)
    rate = Rate(3, 60)
    for _ in range(3):
        assert window.allowed(rate, "k")
        window.hit(rate, "k")
        clock.now += 10
    assert not window.allowed(rate, "k")
    assert window.retry_after(rate, "k") == 30  # the first failure, 30 s ago, leaves in 30 s
    assert window.allowed(rate, "other key")
    clock.now += 30
    assert window.allowed(rate, "k")


def test_fixed_windows_refuse_past_the_amount_until_the_next_window() -> None:
    clock = Clock()
    windows = FixedWindows(clock)
    rate = Rate(2, 60)
    clock.now = 60 * 1000 + 15  # 45 s before the window ends
    assert [windows.hit(rate, "a") for _ in range(3)] == [0, 0, 45]
    assert windows.hit(rate, "b") == 0
    clock.now += 45
    assert windows.hit(rate, "a") == 0
