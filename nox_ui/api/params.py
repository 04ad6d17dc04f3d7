"""Query-parameter parsing shared by the API routes."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime

from nox_ui.errors import Invalid


def parse_time(value: str | None, name: str) -> float | None:
    """Unix seconds or ISO 8601 (a bare date/time is taken as UTC)."""
    if value is None or value == "":
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 <= seconds < 32503680000:  # before year 3000
            raise Invalid(f"{name}: {value!r} is not a usable time")
        return seconds
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}: expected Unix seconds or ISO 8601, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
