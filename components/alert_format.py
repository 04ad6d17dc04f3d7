"""How alerts read on screen, shared by the alerts page and its dialogs: times, values, a rule's
condition as one line, and the state and severity badges of a table cell."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from nox_ui.alerts.rules import RuleView


def col(name: str, label: str, align: str = "left") -> dict[str, Any]:
    """A table column whose field is its name."""
    return {"name": name, "label": label, "field": name, "align": align}


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def number(value: float | None) -> str:
    """4 significant digits for small values, whole thousands-separated numbers for big ones (bytes)."""
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def condition_of(rule: RuleView) -> str:
    """A rule's condition as one readable line: `cpu.percent > 90 for 60 s (clears at 80)`."""
    if rule.kind == "nodata":
        return f"{rule.metric}: no data for {rule.for_seconds} s"
    text = f"{rule.metric} {rule.op} {number(rule.threshold)}"
    if rule.for_seconds:
        text += f" for {rule.for_seconds} s"
    if rule.clear_threshold is not None:
        text += f" (clears at {number(rule.clear_threshold)})"
    return text


STATE_SLOT = (
    '<q-td key="state" :props="props">'
    "<q-badge :color=\"props.row.state === 'firing' ? 'negative' : 'orange'\" :label=\"props.row.state\" />"
    '<q-badge v-if="props.row.silenced" class="q-ml-xs" color="grey" label="silenced" />'
    "</q-td>"
)
SEVERITY_SLOT = (
    '<q-td key="severity" :props="props">'
    '<q-badge outline :label="props.row.severity" '
    ":color=\"{info: 'blue-grey', warning: 'orange', critical: 'negative'}[props.row.severity]\" />"
    "</q-td>"
)
