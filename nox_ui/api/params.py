"""Parameter parsing shared by the API routes: times in query strings and request bodies."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

from nox_ui.errors import Invalid

YEAR_3000 = 32503680000  # Unix seconds


def parse_time(value: str | None, name: str) -> float | None:
    """Unix seconds or ISO 8601 (a bare date/time is taken as UTC), from 1970 to before the year 3000."""
    if value is None or value == "":
        return None
    seconds: float | None = None
    with contextlib.suppress(ValueError):
        seconds = float(value)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"{name}: expected Unix seconds or ISO 8601, got {value!r}") from None
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    # Outside this range a time is a mistake, and converting it back to a date (the audit query does)
    # would fail: year 1 at +14:00 is year 0 in UTC.
    if not math.isfinite(seconds) or not 0 <= seconds < YEAR_3000:
        raise Invalid(f"{name}: {value!r} is not a usable time (1970 to 2999)")
    return seconds


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01 at +14:00 is year 0 in UTC, which the database cannot store
        raise ValueError("out of range once converted to UTC") from None


# A datetime in a request body, as UTC (no zone means UTC); one that leaves the years 1-9999 in UTC is a 422.
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
