"""Parsers for what people type, shared by the API, the pages and the command line: one rule each.

`parse_time` reads a moment (Unix seconds or ISO 8601, UTC when no zone is given); `parse_id` a row's
id (from a link's query); `check_email` an email address. Each raises `Invalid` with a message that
says what was expected.
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, datetime

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


MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger one would fail in the driver, not say "not found"


def parse_id(value: str, name: str) -> int:
    """A row id as a link carries it: decimal digits, 1 to `MAX_ID`."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 0 < int(text) <= MAX_ID:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise Invalid(f"{name} {shown!r} is not an id (a whole number from 1)")
    return int(text)


MAX_EMAIL = 254
# One address, no display name: something either side of one '@', none of the characters that would
# split a list of recipients or start a header's comment.
_EMAIL_RE = re.compile(r"^[^@\s,;<>\"()\[\]]+@[^@\s,;<>\"()\[\]]+$")


def check_email(value: str, name: str = "email") -> str:
    """`value` stripped, or `Invalid` when it is not one address such as ops@example.org."""
    value = value.strip()
    if (
        len(value) > MAX_EMAIL
        or not _EMAIL_RE.match(value)
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        raise Invalid(
            f"{name}: {value!r} is not an email address such as ops@example.org (at most {MAX_EMAIL} characters)"
        )
    return value
