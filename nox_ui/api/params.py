"""Parameter types shared by the API routes; `parse_time` itself lives in `nox_ui.parsing`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

from nox_ui.parsing import parse_time

__all__ = ["UtcDateTime", "parse_time"]


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01 at +14:00 is year 0 in UTC, which the database cannot store
        raise ValueError("out of range once converted to UTC") from None


# A datetime in a request body, as UTC (no zone means UTC); one that leaves the years 1-9999 in UTC is a 422.
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
