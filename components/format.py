"""Formatting helpers shared by the screens (sizes, later rates and durations)."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int | float) -> str:
    """A byte count in binary units with one decimal: 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB.

    Values that would round up to 1024.0 of a unit move to the next one (1.0 MiB, not 1024.0 KiB)."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{sign}{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float) -> str:
    """Bytes per second in binary units: 0 B/s, 12.5 KiB/s, 1.2 MiB/s."""
    return format_bytes(bytes_per_second) + "/s"


def format_duration(seconds: float) -> str:
    """An uptime-style duration: 45 s, 12 min, 3 h 5 min, 4 d 2 h."""
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


def level(value: float, warning: float, critical: float) -> str:
    """'ok', 'warning' or 'critical' for a value against two thresholds."""
    if value >= critical:
        return "critical"
    if value >= warning:
        return "warning"
    return "ok"
