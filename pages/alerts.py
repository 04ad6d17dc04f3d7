"""Alerts: what is firing or pending now (ack, silence), history, rules with a preview, silences and
notifiers with a test button. Thin on purpose: rules, evaluation, silences and delivery live in
`nox_ui/alerts`; every action re-checks the operator role with `guard.require` first. An alert's
delivery log and where notifiers send to are shown to operators and admins only, as in the API."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nicegui import events, run, ui

from nox_ui.alerts.evaluation import AlertCounts
from nox_ui.alerts.preview import Preview
from nox_ui.alerts.queries import AlertView
from nox_ui.alerts.rules import RuleView, notifier_ids
from nox_ui.alerts.silences import SilenceView, is_active, matchers_of
from nox_ui.app import Services
from nox_ui.components.forms import ConfirmDialog
from nox_ui.components.frame import frame
from nox_ui.components.notifier_dialog import NotifierDialog, notifier_target
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.signals import ui_event
from nox_ui.components.tables import row_actions_slot
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Principal, Role

OPS = [">", ">=", "<", "<=", "==", "!="]
SEVERITIES = {"info": "Info", "warning": "Warning", "critical": "Critical"}
SILENCE_DURATIONS = {3600: "1 hour", 4 * 3600: "4 hours", 24 * 3600: "1 day", 7 * 24 * 3600: "1 week"}


def _col(name: str, label: str, align: str = "left") -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": align}


ACTIVE_COLUMNS = [
    _col("state", "State"),
    _col("severity", "Severity"),
    _col("rule", "Rule"),
    _col("series", "Series"),
    _col("value", "Value", "right"),
    _col("since", "Since (UTC)"),
    _col("ack", "Acknowledged"),
    {"name": "actions", "label": "", "field": "key", "align": "right"},
]
HISTORY_COLUMNS = [
    _col("severity", "Severity"),
    _col("rule", "Rule"),
    _col("series", "Series"),
    _col("fired", "Fired (UTC)"),
    _col("resolved", "Resolved (UTC)"),
    _col("ack", "Acknowledged"),
    {"name": "actions", "label": "", "field": "key", "align": "right"},
]
RULE_COLUMNS = [
    _col("name", "Name"),
    _col("condition", "Condition"),
    _col("severity", "Severity"),
    _col("notifiers", "Notifiers"),
    _col("enabled", "Enabled"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
SILENCE_COLUMNS = [
    _col("matchers", "Matches"),
    _col("window", "Window (UTC)"),
    _col("comment", "Comment"),
    _col("by", "By"),
    _col("status", "Status"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
NOTIFIER_COLUMNS = [
    _col("name", "Name"),
    _col("kind", "Kind"),
    _col("target", "Sends to"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
DELIVERY_COLUMNS = [
    _col("notifier", "Notifier"),
    _col("event", "Message"),
    _col("status", "Result"),
    _col("attempts", "Attempts", "right"),
    _col("when", "Sent (UTC)"),
    _col("error", "Last error"),
]
PREVIEW_COLUMNS = [
    _col("series", "Series"),
    _col("start", "Fired (UTC)"),
    _col("end", "Resolved (UTC)"),
    _col("peak", "Worst value", "right"),
]


def _actions(buttons: list[tuple[str, str, str]], key: str = "id", show: str = "true") -> str:
    """This page's row buttons emit `{action, key}`, `key` being the row's `key` or `id` field."""
    return row_actions_slot(buttons, field=key, arg="key", show=show)


_STATE_SLOT = (
    '<q-td key="state" :props="props">'
    "<q-badge :color=\"props.row.state === 'firing' ? 'negative' : 'orange'\" :label=\"props.row.state\" />"
    '<q-badge v-if="props.row.silenced" class="q-ml-xs" color="grey" label="silenced" />'
    "</q-td>"
)
_SEVERITY_SLOT = (
    '<q-td key="severity" :props="props">'
    '<q-badge outline :label="props.row.severity" '
    ":color=\"{info: 'blue-grey', warning: 'orange', critical: 'negative'}[props.row.severity]\" />"
    "</q-td>"
)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _number(value: float | None) -> str:
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
    text = f"{rule.metric} {rule.op} {_number(rule.threshold)}"
    if rule.for_seconds:
        text += f" for {rule.for_seconds} s"
    if rule.clear_threshold is not None:
        text += f" (clears at {_number(rule.clear_threshold)})"
    return text


def active_row(alert: AlertView) -> dict[str, Any]:
    return {
        "key": alert.key,
        "id": alert.id,
        "state": alert.state,
        "silenced": alert.silenced,
        "severity": alert.severity,
        "rule": alert.rule_name,
        "series": alert.series,
        "value": _number(alert.value),
        "since": _when(alert.fired_at or alert.since),
        "ack": alert.acked_by or "-",
        "can_ack": alert.id is not None and alert.state == "firing" and not alert.acked_by,
    }


def history_row(alert: AlertView) -> dict[str, Any]:
    return {
        "key": alert.key,
        "id": alert.id,
        "severity": alert.severity,
        "rule": alert.rule_name,
        "series": alert.series,
        "fired": _when(alert.fired_at),
        "resolved": _when(alert.resolved_at),
        "ack": alert.acked_by or "-",
    }


def register(services: Services, guard: SessionGuard) -> None:
    alerting = services.alerts
    notifiers = services.notifiers

    @guard.page("/alerts", title="Alerts")
    def alerts_page(principal: Principal, id: int | None = None) -> None:
        can_act = principal.role.allows(Role.OPERATOR)
        ip = client_ip()

        async def act(work: Callable[[Principal], Any], success: str) -> Any:
            return await guard.act(Role.OPERATOR, work, success, then=refresh)

        # -- data ------------------------------------------------------------------------------------
        def notifier_names() -> dict[int, str]:
            return {view.id: view.name for view in notifiers.list()}

        def read_live() -> list[AlertView]:
            return alerting.queries.alerts("firing") + alerting.queries.alerts("pending")

        def read_all() -> dict[str, Any]:
            """Everything the tabs show, read in a worker thread (never on the event loop)."""
            names = notifier_names()
            now = alerting.silences.now()
            return {
                "live": read_live(),
                "history": [history_row(a) for a in alerting.queries.alerts("resolved", limit=200)],
                "rules": [
                    {
                        "id": rule.id,
                        "name": rule.name,
                        "condition": condition_of(rule),
                        "severity": rule.severity,
                        "notifiers": ", ".join(names.get(i, f"#{i}") for i in _ids(rule)) or "-",
                        "enabled": "yes" if rule.enabled else "no",
                    }
                    for rule in alerting.rules.list()
                ],
                "silences": [silence_row(s, now) for s in alerting.silences.list(limit=100)],
                "notifiers": [
                    {
                        "id": v.id,
                        "name": v.name,
                        "kind": v.kind,
                        "target": notifier_target(v) if can_act else "(shown to operators)",
                    }
                    for v in notifiers.list()
                ],
                "names": names,
            }

        def show_live(live: list[AlertView]) -> None:
            active_table.rows = [active_row(a) for a in live]
            counts.text = (
                f"{sum(a.state == 'firing' for a in live)} firing · "
                f"{sum(a.state == 'pending' for a in live)} pending"
            )

        async def refresh_live() -> None:
            """What changes with every sample: the active alerts and their counts."""
            show_live(await run.io_bound(read_live))

        async def refresh() -> None:
            data = await run.io_bound(read_all)
            show_live(data["live"])
            history_table.rows = data["history"]
            rules_table.rows = data["rules"]
            silences_table.rows = data["silences"]
            notifiers_table.rows = data["notifiers"]
            rule_notifiers.options = data["names"]
            rule_notifiers.update()

        # -- rule editor -------------------------------------------------------------------------------
        editing: dict[str, int | None] = {"rule": None}
        metric_names = sorted(info.name for info in services.metrics.names())

        with ui.dialog() as rule_dialog, card().classes("q-pa-md gap-2 w-full max-w-3xl"):
            rule_title = ui.label("New rule").classes("text-h6")
            with ui.grid(columns=2).classes("w-full gap-x-4 gap-y-1"):
                rule_name = ui.input("Name").props("outlined dense").mark("rule-name")
                rule_metric = (
                    ui.select(metric_names, label="Metric", with_input=True, new_value_mode="add-unique")
                    .props('outlined dense hint="a name, or name{label=\\"value\\"}"')
                    .mark("rule-metric")
                )
                rule_kind = ui.select(
                    {"threshold": "Threshold", "nodata": "No data"}, value="threshold", label="Kind"
                ).props("outlined dense")
                rule_severity = ui.select(SEVERITIES, value="warning", label="Severity").props(
                    "outlined dense"
                )
                rule_op = ui.select(OPS, value=">", label="Operator").props("outlined dense").mark("rule-op")
                rule_threshold = (
                    ui.number("Threshold", value=90).props("outlined dense").mark("rule-threshold")
                )
                rule_for = (
                    ui.number("For (seconds)", value=60, min=0, precision=0)
                    .props("outlined dense")
                    .mark("rule-for")
                )
                rule_clear = (
                    ui.number("Clears at (optional, hysteresis)")
                    .props("outlined dense clearable")
                    .mark("rule-clear")
                )
                rule_repeat = ui.number("Repeat every (seconds, optional)", min=60, precision=0).props(
                    "outlined dense clearable"
                )
                rule_notifiers = ui.select({}, label="Notifiers", multiple=True).props(
                    "outlined dense use-chips"
                )
            rule_enabled = ui.switch("Enabled", value=True)
            rule_description = (
                ui.textarea("Description / runbook").props("outlined dense autogrow").classes("w-full")
            )
            rule_kind.on_value_change(
                lambda: [
                    e.set_visibility(rule_kind.value == "threshold")
                    for e in (rule_op, rule_threshold, rule_clear)
                ]
            )
            rule_error = ui.label("").classes("text-negative text-body2").props("role=alert")
            preview_box = ui.column().classes("w-full gap-1")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Preview last 24 h", icon="query_stats", on_click=lambda: show_preview()).props(
                    "flat"
                ).mark("rule-preview")
                ui.button("Cancel", on_click=rule_dialog.close).props("flat")
                ui.button("Save", on_click=lambda: save_rule()).props("unelevated color=primary").mark(
                    "rule-save"
                )

        def rule_body() -> dict[str, Any]:
            def whole(value: float | None) -> int | None:
                return None if value is None else int(value)

            threshold_kind = rule_kind.value == "threshold"  # a no-data rule has no operator or thresholds
            return {
                "name": rule_name.value or "",
                "metric": rule_metric.value or "",
                "kind": rule_kind.value,
                "op": rule_op.value if threshold_kind else ">",
                "threshold": rule_threshold.value
                if threshold_kind and rule_threshold.value is not None
                else 0.0,
                "for_seconds": whole(rule_for.value) or 0,
                "clear_threshold": rule_clear.value if threshold_kind else None,
                "severity": rule_severity.value,
                "notifiers": list(rule_notifiers.value or []),
                "repeat_seconds": whole(rule_repeat.value),
                "enabled": bool(rule_enabled.value),
                "description": rule_description.value or "",
            }

        def open_rule(rule: RuleView | None) -> None:
            editing["rule"] = rule.id if rule else None
            rule_title.text = f"Edit rule {rule.name}" if rule else "New rule"
            rule_error.text = ""
            preview_box.clear()
            source = rule or RuleView.draft(threshold=90, for_seconds=60)
            rule_name.value = source.name
            rule_metric.value = source.metric or None
            rule_kind.value = source.kind
            rule_op.value = source.op
            rule_threshold.value = source.threshold
            rule_for.value = source.for_seconds
            rule_clear.value = source.clear_threshold
            rule_severity.value = source.severity
            rule_notifiers.value = _ids(source)
            rule_repeat.value = source.repeat_seconds
            rule_enabled.value = source.enabled
            rule_description.value = source.description
            rule_dialog.open()

        async def save_rule() -> None:
            rule_error.text = ""
            body = rule_body()
            rule_id = editing["rule"]
            actor = guard.require(Role.OPERATOR)
            if actor is None:
                return
            try:
                if rule_id is None:
                    await run.io_bound(alerting.rules.create, actor, body, ip=ip)
                else:
                    await run.io_bound(lambda: alerting.rules.update(actor, rule_id, body, ip=ip))
            except NoxError as exc:
                rule_error.text = exc.message
                return
            rule_dialog.close()
            ui.notify(f"Rule {body['name']} saved; it is evaluated from the next sample.", type="positive")
            await refresh()

        async def show_preview() -> None:
            rule_error.text = ""
            preview_box.clear()
            actor = guard.require(Role.OPERATOR)
            if actor is None:
                return
            try:
                body = rule_body()
                body["name"] = body["name"] or "preview"  # a name is not needed to look back
                result: Preview = await run.io_bound(alerting.preview, actor, body, ip=ip)
            except NoxError as exc:
                rule_error.text = exc.message
                return
            with preview_box:
                count = len(result.episodes)
                ui.label(
                    f"With this rule, {count} episode(s) would have fired in the last 24 h "
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
                                "start": _when(datetime.fromtimestamp(e.start, UTC)),
                                "end": _when(datetime.fromtimestamp(e.end, UTC)) if e.end else "still firing",
                                "peak": _number(e.peak),
                            }
                            for e in result.episodes[:50]
                        ],
                    ).props("flat dense").classes("w-full")

        # -- silence dialog ----------------------------------------------------------------------------
        with ui.dialog() as silence_dialog, card().classes("q-pa-md gap-2 w-full max-w-lg"):
            ui.label("New silence").classes("text-h6")
            ui.label(
                "Alerts whose labels match every line are not notified while the silence lasts."
            ).classes("text-caption nox-muted")
            silence_matchers = (
                ui.textarea("Matchers, one label=value per line (alertname = the rule's name)")
                .props("outlined dense autogrow")
                .classes("w-full")
                .mark("silence-matchers")
            )
            silence_duration = ui.select(SILENCE_DURATIONS, value=3600, label="For").props("outlined dense")
            silence_comment = (
                ui.input("Comment").props("outlined dense").classes("w-full").mark("silence-comment")
            )
            silence_error = ui.label("").classes("text-negative text-body2").props("role=alert")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=silence_dialog.close).props("flat")
                ui.button("Silence", on_click=lambda: save_silence()).props("unelevated color=primary").mark(
                    "silence-save"
                )

        def open_silence(matchers: dict[str, str]) -> None:
            silence_matchers.value = "\n".join(f"{k}={v}" for k, v in matchers.items())
            silence_comment.value = ""
            silence_error.text = ""
            silence_dialog.open()

        async def save_silence() -> None:
            silence_error.text = ""
            matchers: dict[str, str] = {}
            for line in (silence_matchers.value or "").splitlines():
                if not line.strip():
                    continue
                key, sep, value = line.partition("=")
                if not sep:
                    silence_error.text = f"not a label=value line: {line.strip()!r}"
                    return
                matchers[key.strip()] = value.strip()
            actor = guard.require(Role.OPERATOR)
            if actor is None:
                return
            try:
                await run.io_bound(
                    lambda: alerting.silences.create(
                        actor,
                        matchers,
                        silence_comment.value or "",
                        duration_seconds=int(silence_duration.value),
                        ip=ip,
                    )
                )
            except NoxError as exc:
                silence_error.text = exc.message
                return
            silence_dialog.close()
            ui.notify("Silenced.", type="positive")
            await refresh()

        # -- notifier dialog ---------------------------------------------------------------------------
        notifier_dialog = NotifierDialog(services, guard, refresh)

        # -- one alert and its delivery log (also what ?id= in a notification opens) -----------------
        with ui.dialog() as details_dialog, card().classes("q-pa-md gap-2 w-full max-w-3xl"):
            details_title = ui.label("").classes("text-h6")
            details_facts = ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-body2")
            ui.label("Delivery log").classes("text-subtitle2 q-mt-sm")
            deliveries_table: ui.table | None = None
            if can_act:
                deliveries_table = (
                    ui.table(columns=DELIVERY_COLUMNS, rows=[], row_key="id")
                    .props("flat dense bordered no-data-label='No notification was sent for this alert.'")
                    .classes("w-full")
                    .mark("delivery-log")
                )
            else:
                ui.label("The delivery log is shown to operators and admins.").classes(
                    "text-body2 nox-muted"
                ).mark("delivery-log-hidden")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=details_dialog.close).props("flat")

        def open_details(alert_id: int) -> None:
            try:
                alert = alerting.queries.get(alert_id)
            except NoxError as exc:
                ui.notify(exc.message, type="negative")
                return
            details_title.text = f"{alert.rule_name}: {alert.state}"
            details_facts.clear()
            with details_facts:
                for name, value in (
                    ("Series", alert.series),
                    ("Severity", alert.severity),
                    ("Value", _number(alert.value)),
                    ("Threshold", _number(alert.threshold)),
                    ("Fired", _when(alert.fired_at)),
                    ("Resolved", _when(alert.resolved_at)),
                    (
                        "Acknowledged",
                        f"{alert.acked_by} at {_when(alert.acked_at)}" if alert.acked_by else "-",
                    ),
                    ("Silenced", "yes" if alert.silenced else "no"),
                ):
                    ui.label(name).classes("nox-muted")
                    ui.label(value)
            if deliveries_table is not None and guard.require(Role.OPERATOR) is not None:
                deliveries_table.rows = [
                    {
                        "id": d.id,
                        "notifier": f"{d.notifier_name} ({d.notifier_kind})",
                        "event": d.event,
                        "status": d.status,
                        "attempts": d.attempts,
                        "when": _when(d.sent_at),
                        "error": d.last_error or "-",
                    }
                    for d in notifiers.deliveries_for_alert(alert_id)
                ]
            details_dialog.open()

        # -- confirmation for deletions ----------------------------------------------------------------
        ask = ConfirmDialog("confirm-delete").ask

        # -- row actions -------------------------------------------------------------------------------
        async def on_active(event: events.GenericEventArguments) -> None:
            key = str(event.args.get("key"))
            alert = next((a for a in active_table.rows if a["key"] == key), None)
            if alert is None:
                return
            if event.args.get("action") == "details" and alert["id"] is not None:
                open_details(alert["id"])
            elif event.args.get("action") == "ack" and alert["id"] is not None:
                await act(lambda actor: alerting.queries.ack(actor, alert["id"], ip=ip), "Acknowledged.")
            elif event.args.get("action") == "silence":
                views = {
                    a.key: a for a in alerting.queries.alerts("firing") + alerting.queries.alerts("pending")
                }
                view = views.get(key)
                if view is not None:
                    open_silence({"alertname": view.rule_name, **view.labels})

        def on_history(event: events.GenericEventArguments) -> None:
            open_details(int(event.args.get("key")))

        async def on_rule(event: events.GenericEventArguments) -> None:
            rule_id = int(event.args.get("key"))
            action = event.args.get("action")
            try:
                rule = alerting.rules.get(rule_id)
            except NoxError as exc:
                ui.notify(exc.message, type="negative")
                return
            if action == "edit":
                open_rule(rule)
            elif action == "toggle":
                await act(
                    lambda actor: alerting.rules.update(actor, rule_id, {"enabled": not rule.enabled}, ip=ip),
                    f"Rule {rule.name} {'disabled' if rule.enabled else 'enabled'}.",
                )
            elif action == "delete":
                ask(
                    "Delete rule",
                    f"Delete the rule {rule.name}? Its alert history goes with it.",
                    "Delete",
                    lambda: act(lambda actor: alerting.rules.delete(actor, rule_id, ip=ip), "Rule deleted."),
                )

        async def on_silence(event: events.GenericEventArguments) -> None:
            silence_id = int(event.args.get("key"))
            await act(lambda actor: alerting.silences.end(actor, silence_id, ip=ip), "Silence ended.")

        async def on_notifier(event: events.GenericEventArguments) -> None:
            notifier_id = int(event.args.get("key"))
            action = event.args.get("action")
            if action == "test":
                await notifier_dialog.test(notifier_id)
                return
            try:
                view = notifiers.get(notifier_id)
            except NoxError as exc:
                ui.notify(exc.message, type="negative")
                return
            if action == "edit":
                notifier_dialog.open(view)
            elif action == "delete":
                ask(
                    "Delete notifier",
                    f"Delete the notifier {view.name}? Rules that use it stop sending to it.",
                    "Delete",
                    lambda: act(
                        lambda actor: notifiers.delete(actor, notifier_id, ip=ip), "Notifier deleted."
                    ),
                )

        # -- the page ----------------------------------------------------------------------------------
        with frame(guard, principal, "Alerts"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Alerts").classes("text-h5")
                counts = ui.label("").classes("text-body2 nox-muted").mark("alert-counts")
                ui.space()
                if can_act:
                    ui.button("New rule", icon="add_alert", on_click=lambda: open_rule(None)).props(
                        "unelevated color=primary"
                    ).mark("new-rule")
            with ui.tabs().classes("w-full").props("align=left no-caps inline-label") as tabs:
                tab_active = ui.tab("Active", icon="notifications_active")
                tab_history = ui.tab("History", icon="history")
                tab_rules = ui.tab("Rules", icon="rule")
                tab_silences = ui.tab("Silences", icon="notifications_off")
                tab_notifiers = ui.tab("Notifiers", icon="send")
            with ui.tab_panels(tabs, value=tab_active).classes("w-full bg-transparent"):
                with ui.tab_panel(tab_active).classes("q-pa-none"):
                    active_table = (
                        ui.table(columns=ACTIVE_COLUMNS, rows=[], row_key="key")
                        .props("flat bordered no-data-label='Nothing is firing or pending.'")
                        .classes("w-full")
                        .mark("active-alerts")
                    )
                    active_table.add_slot(
                        "no-data",
                        '<div class="row items-center q-gutter-sm"><q-icon name="check_circle" color="positive" '
                        'size="sm" /><span>Nothing is firing or pending.</span></div>',
                    )
                    active_table.add_slot("body-cell-state", _STATE_SLOT)
                    active_table.add_slot("body-cell-severity", _SEVERITY_SLOT)
                    buttons = [("details", "info", "Details and delivery log")]
                    if can_act:
                        buttons += [
                            ("ack", "done", "Acknowledge"),
                            ("silence", "notifications_off", "Silence"),
                        ]
                    active_table.add_slot(
                        "body-cell-actions",
                        _actions(buttons, key="key", show="props.row.state === 'firing'"),
                    )
                    active_table.on("row-action", on_active)
                with ui.tab_panel(tab_history).classes("q-pa-none"):
                    history_table = (
                        ui.table(columns=HISTORY_COLUMNS, rows=[], row_key="id", pagination=25)
                        .props("flat bordered no-data-label='No alert has resolved yet.'")
                        .classes("w-full")
                        .mark("alert-history")
                    )
                    history_table.add_slot("body-cell-severity", _SEVERITY_SLOT)
                    history_table.add_slot(
                        "body-cell-actions",
                        _actions([("details", "info", "Details and delivery log")], key="id"),
                    )
                    history_table.on("row-action", on_history)
                    ui.input("Filter").bind_value_to(history_table, "filter").props(
                        "dense clearable"
                    ).classes("w-64")
                with ui.tab_panel(tab_rules).classes("q-pa-none"):
                    rules_table = (
                        ui.table(columns=RULE_COLUMNS, rows=[], row_key="id")
                        .props("flat bordered no-data-label='No rules yet.'")
                        .classes("w-full")
                        .mark("alert-rules")
                    )
                    rules_table.add_slot("body-cell-severity", _SEVERITY_SLOT)
                    if can_act:
                        rules_table.add_slot(
                            "body-cell-actions",
                            _actions(
                                [
                                    ("edit", "edit", "Edit"),
                                    ("toggle", "power_settings_new", "Enable or disable"),
                                    ("delete", "delete", "Delete"),
                                ]
                            ),
                        )
                    rules_table.on("row-action", on_rule)
                with ui.tab_panel(tab_silences).classes("q-pa-none gap-2"):
                    if can_act:
                        ui.button(
                            "New silence", icon="notifications_off", on_click=lambda: open_silence({})
                        ).props("flat")
                    silences_table = (
                        ui.table(columns=SILENCE_COLUMNS, rows=[], row_key="id")
                        .props("flat bordered no-data-label='No silences.'")
                        .classes("w-full")
                        .mark("silences")
                    )
                    if can_act:
                        silences_table.add_slot(
                            "body-cell-actions",
                            _actions(
                                [("end", "stop_circle", "End now")], show="props.row.status === 'active'"
                            ),
                        )
                    silences_table.on("row-action", on_silence)
                with ui.tab_panel(tab_notifiers).classes("q-pa-none gap-2"):
                    if can_act:
                        ui.button(
                            "New notifier", icon="add", on_click=lambda: notifier_dialog.open(None)
                        ).props("flat").mark("new-notifier")
                    notifiers_table = (
                        ui.table(columns=NOTIFIER_COLUMNS, rows=[], row_key="id")
                        .props("flat bordered no-data-label='No notifiers yet.'")
                        .classes("w-full")
                        .mark("notifiers")
                    )
                    if can_act:
                        notifiers_table.add_slot(
                            "body-cell-actions",
                            _actions(
                                [
                                    ("test", "send", "Send a test"),
                                    ("edit", "edit", "Edit"),
                                    ("delete", "delete", "Delete"),
                                ]
                            ),
                        )
                    notifiers_table.on("row-action", on_notifier)

        ui.timer(0, refresh, once=True)
        if id is not None:
            open_details(id)

        # Firing, resolving and acks arrive at once; values and pending alerts every few seconds.
        async def on_changed(_counts: AlertCounts) -> None:
            await refresh()

        ui_event(alerting.engine.changed).subscribe(on_changed)
        ui.timer(3.0, refresh_live)


def silence_row(silence: SilenceView, now: datetime) -> dict[str, Any]:
    active = is_active(silence, now)
    status = "active" if active else ("ended" if silence.ends_at <= now else "scheduled")
    return {
        "id": silence.id,
        "matchers": ", ".join(f"{k}={v}" for k, v in matchers_of(silence).items()),
        "window": f"{_when(silence.starts_at)} → {_when(silence.ends_at)}",
        "comment": silence.comment,
        "by": silence.created_by,
        "status": status,
    }


def _ids(rule: RuleView) -> list[int]:
    return notifier_ids(rule)
