"""Request throttling for the REST API: `api_rate_limit` (e.g. `600/minute`) per client address.

Counted in fixed windows in this process's memory (`nox_ui/rates.py` `FixedWindows`, about a
microsecond per request: the file says why not the `limits` library here), so a client may see up
to twice the limit across a window boundary; the limit is a guard against runaway scripts, not a
billing meter. The client address is the one `nox_ui/http_guard.py` settled (a trusted proxy's
`X-Forwarded-For`, else the peer). Several instances behind a load balancer each count on their own
until the counters move to a shared storage.
"""

from __future__ import annotations

from nox_ui.errors import RateLimited
from nox_ui.rates import FixedWindows, Rate, parse_rates


class ApiRateLimiter:
    def __init__(self, limit: str = "600/minute") -> None:
        self._windows = FixedWindows()
        self._rates: list[Rate] = []
        self.limit = limit
        self.configure(limit)

    def configure(self, limit: str) -> None:
        """Use a new limit from now on (the runtime setting changed); counts start afresh."""
        self._rates = parse_rates(limit)
        self._windows.clear()
        self.limit = limit

    def check(self, client: str) -> None:
        """Count one request of `client`; raise RateLimited (429 with Retry-After) past the limit."""
        for rate in self._rates:
            retry_after = self._windows.hit(rate, client)
            if retry_after:
                raise RateLimited(
                    f"too many requests: the limit is {self.limit} per client; retry in {retry_after} s",
                    retry_after,
                )
