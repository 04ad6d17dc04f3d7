"""The rule editor of /alerts: one dialog to create or edit an alert rule, with a preview of what the
rule would have done over the last 24 hours. Operators only: saving and previewing re-check the role
with `await guard.allow`; both run in a worker thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nicegui import run, ui

from nox_ui.alerts.preview import Preview
from nox_ui.alerts.rules import OPS, SEVERITIES, RuleView, notifier_ids
from nox_ui.app import Services
from nox_ui.components.alert_format import col, number, when
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Role

KINDS = {"threshold": "Threshold", "nodata": "No data"}
PREVIEW_COLUMNS = [
    col("series", "Series"),
    col("start", "Fired (UTC)"),
    col("end", "Resolved (UTC)"),
    col("peak", "Worst value", "right"),
]


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


class RuleEditor:
    """Built once per page; `open(rule)` edits a rule, `open(None)` starts a new one. `set_notifiers`
    keeps the notifier choices current; `on_saved` runs after a save (a refresh of the page)."""

    def __init__(
        self,
        services: Services,
        guard: SessionGuard,
        metric_names: list[str],
        on_saved: Callable[[], Awaitable[None]],
    ) -> None:
        self.alerts = services.alerts
        self.guard = guard
        self.on_saved = on_saved
        self.ip = client_ip()
        self.editing: int | None = None
        with ui.dialog() as self.dialog, card().classes("q-pa-md gap-2 w-full max-w-3xl").mark("rule-editor"):
            self.title = ui.label("New rule").classes("text-h6")
            with ui.grid(columns=2).classes("w-full gap-x-4 gap-y-1"):
                self.name = ui.input("Name").props("outlined dense").mark("rule-name")
                self.metric = (
                    ui.select(metric_names, label="Metric", with_input=True, new_value_mode="add-unique")
                    .props('outlined dense hint="a name, or name{label=\\"value\\"}"')
                    .mark("rule-metric")
                )
                self.kind = ui.select(KINDS, value="threshold", label="Kind").props("outlined dense")
                self.severity = ui.select(
                    {s: s.capitalize() for s in SEVERITIES}, value="warning", label="Severity"
                ).props("outlined dense")
                self.op = (
                    ui.select(list(OPS), value=">", label="Operator").props("outlined dense").mark("rule-op")
                )
                self.threshold = (
                    ui.number("Threshold", value=90).props("outlined dense").mark("rule-threshold")
                )
                self.for_seconds = (
                    ui.number("For (seconds)", value=60, min=0, precision=0)
                    .props("outlined dense")
                    .mark("rule-for")
                )
                self.clear = (
                    ui.number("Clears at (optional, hysteresis)")
                    .props("outlined dense clearable")
                    .mark("rule-clear")
                )
                self.repeat = ui.number("Repeat every (seconds, optional)", min=60, precision=0).props(
                    "outlined dense clearable"
                )
                self.notifiers = ui.select({}, label="Notifiers", multiple=True).props(
                    "outlined dense use-chips"
                )
            self.enabled = ui.switch("Enabled", value=True)
            self.description = (
                ui.textarea("Description / runbook").props("outlined dense autogrow").classes("w-full")
            )
            self.kind.on_value_change(self._show_kind_fields)
            self.error = (
                ui.label("").classes("text-negative text-body2").props("role=alert").mark("rule-error")
            )
            self.preview_box = ui.column().classes("w-full gap-1")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Preview last 24 h", icon="query_stats", on_click=self.preview).props("flat").mark(
                    "rule-preview"
                )
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", on_click=self.save).props("unelevated color=primary").mark("rule-save")

    def _show_kind_fields(self) -> None:
        for field in (self.op, self.threshold, self.clear):
            field.set_visibility(self.kind.value == "threshold")

    def set_notifiers(self, names: dict[int, str]) -> None:
        self.notifiers.options = names
        self.notifiers.update()

    def body(self) -> dict[str, Any]:
        """The rule as the form shows it, in the shape `rules.create` and `rules.update` take."""
        threshold_kind = self.kind.value == "threshold"  # a no-data rule has no operator or thresholds
        return {
            "name": self.name.value or "",
            "metric": self.metric.value or "",
            "kind": self.kind.value,
            "op": self.op.value if threshold_kind else ">",
            "threshold": self.threshold.value if threshold_kind and self.threshold.value is not None else 0.0,
            "for_seconds": _whole(self.for_seconds.value) or 0,
            "clear_threshold": self.clear.value if threshold_kind else None,
            "severity": self.severity.value,
            "notifiers": list(self.notifiers.value or []),
            "repeat_seconds": _whole(self.repeat.value),
            "enabled": bool(self.enabled.value),
            "description": self.description.value or "",
        }

    def open(self, rule: RuleView | None) -> None:
        self.editing = rule.id if rule else None
        self.title.text = f"Edit rule {rule.name}" if rule else "New rule"
        self.error.text = ""
        self.preview_box.clear()
        source = rule or RuleView.draft(threshold=90, for_seconds=60)
        self.name.value = source.name
        self.metric.value = source.metric or None
        self.kind.value = source.kind
        self.op.value = source.op
        self.threshold.value = source.threshold
        self.for_seconds.value = source.for_seconds
        self.clear.value = source.clear_threshold
        self.severity.value = source.severity
        self.notifiers.value = notifier_ids(source)
        self.repeat.value = source.repeat_seconds
        self.enabled.value = source.enabled
        self.description.value = source.description
        self.dialog.open()

    async def save(self) -> None:
        self.error.text = ""
        body = self.body()
        rule_id, ip = self.editing, self.ip
        actor = await self.guard.allow(Role.OPERATOR)
        if actor is None:
            return
        try:
            if rule_id is None:
                await run.io_bound(self.alerts.rules.create, actor, body, ip=ip)
            else:
                await run.io_bound(lambda: self.alerts.rules.update(actor, rule_id, body, ip=ip))
        except NoxError as exc:
            self.error.text = exc.message
            return
        self.dialog.close()
        ui.notify(f"Rule {body['name']} saved; it is evaluated from the next sample.", type="positive")
        await self.on_saved()

    async def preview(self) -> None:
        self.error.text = ""
        self.preview_box.clear()
        actor = await self.guard.allow(Role.OPERATOR)
        if actor is None:
            return
        try:
            body = self.body()
            body["name"] = body["name"] or "preview"  # a name is not needed to look back
            result: Preview | None = await run.io_bound(self.alerts.preview, actor, body, ip=self.ip)
        except NoxError as exc:
            self.error.text = exc.message
            return
        if result is None:  # the app is shutting down
            return
        with self.preview_box:
            ui.label(
                f"With this rule, {len(result.episodes)} episode(s) would have fired in the last 24 h "
                f"over {len(result.series)} series."
            ).classes("text-body2 text-weight-medium").mark("preview-summary")
            if result.note:
                ui.label(result.note).classes("text-caption nox-muted")
            if result.episodes:
                ui.table(
                    columns=PREVIEW_COLUMNS,
                    rows=[
                        {
                            "series": e.series,
                            "start": when(datetime.fromtimestamp(e.start, UTC)),
                            "end": when(datetime.fromtimestamp(e.end, UTC)) if e.end else "still firing",
                            "peak": number(e.peak),
                        }
                        for e in result.episodes[:50]
                    ],
                ).props("flat dense").classes("w-full")
