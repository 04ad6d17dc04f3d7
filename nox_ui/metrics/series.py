"""Metric specs and series identifiers: `name{label="value",...}` with labels sorted by key."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nox_ui.errors import Invalid

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
# DOTALL: a label value may hold a newline (a mount point can), which series_id leaves as it is.
_SELECTOR_RE = re.compile(r"^\s*(?P<name>[a-z][a-z0-9_.]*)\s*(\{(?P<labels>.*)\})?\s*$", re.DOTALL)
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str  # percent, bytes, bytes_per_second, per_second, seconds, celsius, rpm, count, load
    description: str
    labels: tuple[str, ...] = ()
    collector: str = ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def series_id(name: str, labels: dict[str, str] | None = None) -> str:
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(str(labels[key]))}"' for key in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """Parse `name` or `name{a="b",c="d"}`; raise Invalid with a readable reason otherwise."""
    match = _SELECTOR_RE.match(text or "")
    if not match or not NAME_RE.match(match.group("name")):
        raise Invalid(
            f"invalid metric {text!r}: expected a dotted name such as cpu.percent, optionally with labels"
        )
    labels: dict[str, str] = {}
    rest = (match.group("labels") or "").strip()
    while rest:
        label = _LABEL_RE.match(rest)
        if not label:
            raise Invalid(f'invalid labels in {text!r}: expected key="value" pairs')
        labels[label.group(1)] = re.sub(r"\\(.)", r"\1", label.group(2))
        rest = rest[label.end() :].strip()
    return match.group("name"), labels


def series_name(sid: str) -> str:
    brace = sid.find("{")
    return sid if brace < 0 else sid[:brace]
