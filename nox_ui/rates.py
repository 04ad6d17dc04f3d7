"""Rate limits: rate strings such as `600/minute`, and the counters the panel needs.

- `Limiter` counts on the `limits` library: an atomic `hit` that counts and answers in one step (so
  a burst cannot slip between a check and a count), exact moving windows, and storages beyond this
  process's memory (Redis) for several instances. Sign-in and password checks use it. `limits` is
  imported at the first hit (~0.9 MiB resident), not at start.
- `FixedWindows` is a page of our own for the API limit, on the path of every API request. Measured
  (wrk -c16 against /api/v1/metrics/current, both in one run): with `limits`' memory storage the
  panel answered 1,218 requests/s against 1,465 with this class, because that storage starts a new
  expiry timer thread every 10 ms while requests keep coming. A shared (Redis) API limit for several
  instances will use `Limiter` with a `redis://` storage, which has no such thread.

`parse_rates` is ours too: it validates the runtime settings at every start.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from limits import RateLimitItem

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
_MAX_KEYS = 100_000
_RATE_RE = re.compile(r"^\s*(\d{1,9})\s*(?:/|per)\s*(\d{1,6})?\s*([a-z]+?)s?\s*$", re.IGNORECASE)


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


Strategy = Literal["moving-window", "fixed-window"]


class Limiter:
    """Counts hits per key against a `Rate`. `moving-window` is exact over the last T seconds (sign-in
    attempts, where N is small); `fixed-window` is one counter per window (the API, where a hit must
    cost next to nothing). `storage_uri` is a `limits` storage: `memory://` (this process) or
    `redis://...` (shared by several instances)."""

    def __init__(self, strategy: Strategy, storage_uri: str = "memory://") -> None:
        self.strategy = strategy
        self.storage_uri = storage_uri
        self._lock = threading.Lock()
        self._storage: Any = None
        self._limiter: Any = None
        self._items: dict[Rate, RateLimitItem] = {}

    def _ready(self) -> Any:
        if self._limiter is None:
            with self._lock:
                if self._limiter is None:
                    from limits.storage import storage_from_string
                    from limits.strategies import STRATEGIES

                    self._storage = storage_from_string(self.storage_uri)
                    self._limiter = STRATEGIES[self.strategy](self._storage)
        return self._limiter

    def _item(self, rate: Rate) -> RateLimitItem:
        item = self._items.get(rate)
        if item is None:
            from limits import RateLimitItemPerSecond

            item = self._items[rate] = RateLimitItemPerSecond(rate.amount, rate.seconds)
        return item

    def hit(self, rate: Rate, key: str) -> bool:
        """Count one event for `key`; False (and nothing counted) when that would pass the rate."""
        return bool(self._ready().hit(self._item(rate), key))

    def retry_after(self, rate: Rate, key: str) -> int:
        """Seconds until `key` may act again under `rate` (at least 1)."""
        stats = self._ready().get_window_stats(self._item(rate), key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def clear(self, rate: Rate, key: str) -> None:
        self._ready().clear(self._item(rate), key)

    def reset(self) -> None:
        """Forget every count (a new limit applies from now on)."""
        if self._storage is not None:
            self._storage.reset()


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
