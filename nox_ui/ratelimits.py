"""Rate limits in memory: rate strings such as `600/minute`, and the two counters the panel needs.

- `SlidingWindow`: "at most N events per key in the last T seconds", exact (it keeps the events'
  times), for sign-in failures, where N is small.
- `FixedWindows`: "at most N requests per key per window", one counter per key and window, for the
  API, where N is large and the check must cost next to nothing.

This replaces the `limits` package, which costs ~1.6 MiB of memory in every process for what is a
page of code here. Per process: several instances each count on their own.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_UNITS = {
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
    "day": 86400,
    "d": 86400,
}
# `600/minute`, `10 per second`, `100/5 minutes`, `1000 per 2 hours`
_RATE_RE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*([a-z]+?)s?\s*$", re.IGNORECASE)
_MAX_KEYS = 100_000


@dataclass(frozen=True)
class Rate:
    amount: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.amount}/{self.seconds}s"


def parse_rates(text: str) -> list[Rate]:
    """Parse `600/minute` or several joined by `;` or `,`; ValueError with the offending part."""
    rates = []
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        match = _RATE_RE.match(part)
        unit = match.group(3).lower() if match else ""
        if not match or unit not in _UNITS:
            raise ValueError(f"not a rate: {part.strip()!r}")
        amount, multiple = int(match.group(1)), int(match.group(2) or 1)
        if amount < 1 or multiple < 1:
            raise ValueError(f"not a rate: {part.strip()!r}")
        rates.append(Rate(amount, multiple * _UNITS[unit]))
    if not rates:
        raise ValueError("no rate given")
    return rates


class SlidingWindow:
    """At most `amount` events per key within the last `seconds` (times kept per key)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, seconds: int, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - seconds:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def allowed(self, rate: Rate, key: str) -> bool:
        """Whether one more event would stay within the rate (counts nothing)."""
        with self._lock:
            return len(self._recent(key, rate.seconds, self.clock())) < rate.amount

    def hit(self, rate: Rate, key: str) -> None:
        with self._lock:
            now = self.clock()
            events = self._recent(key, rate.seconds, now)
            if not events:
                if len(self._events) >= _MAX_KEYS:
                    self._events.clear()  # a flood of one-off keys must not grow memory for ever
                events = self._events.setdefault(key, deque())
            events.append(now)
            while len(events) > rate.amount:
                events.popleft()

    def retry_after(self, rate: Rate, key: str) -> int:
        """Seconds until the oldest counted event leaves the window (at least 1)."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, rate.seconds, now)
            if len(events) < rate.amount:
                return 0
            return max(1, math.ceil(events[0] + rate.seconds - now))


class FixedWindows:
    """At most `amount` requests per key per window of `seconds`, windows aligned to the clock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, rate: Rate, key: str) -> int:
        """Count one request; 0 when within the rate, else the seconds until the window ends."""
        now = self.clock()
        window = int(now // rate.seconds)
        slot = (key, rate.seconds, window)
        with self._lock:
            count = self._counts.get(slot, 0) + 1
            if count == 1 and len(self._counts) >= _MAX_KEYS:
                self._prune(now)
            self._counts[slot] = count
        if count <= rate.amount:
            return 0
        return max(1, math.ceil((window + 1) * rate.seconds - now))

    def _prune(self, now: float) -> None:
        self._counts = {slot: count for slot, count in self._counts.items() if slot[2] == int(now // slot[1])}

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
