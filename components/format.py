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
