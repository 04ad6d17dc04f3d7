"""The five tabs of /alerts, one builder each: Active, History, Rules, Silences and Notifiers. Each
builds its table inside the current tab panel and owns its row actions; data arrives through `show`
(read by the page in a worker thread). Every action re-checks the operator role (`await guard.allow` or
`guard.act`) and reads or writes in a worker thread. `focus_row` marks the row a link named."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import events, run, ui

from nox_ui.app import Services
from nox_ui.components.alert_details import AlertDetails
from nox_ui.components.alert_format import SEVERITY_SLOT, STATE_SLOT, col
from nox_ui.components.notifier_dialog import NotifierDialog
from nox_ui.components.rule_editor import RuleEditor
from nox_ui.components.session import SessionGuard
from nox_ui.components.silence_dialog import SilenceDialog
from nox_ui.components.tables import row_actions_slot
from nox_ui.errors import NoxError
from nox_ui.pages.alerts.data import active_row, read_live
from nox_ui.roles import Principal, Role

ACTIVE_COLUMNS = [
    col("state", "State"),
    col("severity", "Severity"),
    col("rule", "Rule"),
    col("series", "Series"),
    col("value", "Value", "right"),
    col("since", "Since (UTC)"),
    col("ack", "Acknowledged"),
    {"name": "actions", "label": "", "field": "key", "align": "right"},
]
HISTORY_COLUMNS = [
    col("severity", "Severity"),
    col("rule", "Rule"),
    col("series", "Series"),
    col("fired", "Fired (UTC)"),
    col("resolved", "Resolved (UTC)"),
    col("ack", "Acknowledged"),
    {"name": "actions", "label": "", "field": "key", "align": "right"},
]
RULE_COLUMNS = [
    col("name", "Name"),
    col("condition", "Condition"),
    col("severity", "Severity"),
    col("notifiers", "Notifiers"),
    col("enabled", "Enabled"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
SILENCE_COLUMNS = [
    col("matchers", "Matches"),
    col("window", "Window (UTC)"),
    col("comment", "Comment"),
    col("by", "By"),
    col("status", "Status"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
NOTIFIER_COLUMNS = [
    col("name", "Name"),
    col("kind", "Kind"),
    col("target", "Sends to"),
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
DETAILS_BUTTON = ("details", "info", "Details and delivery log")
FOCUS_CLASS = "nox-focus"  # the row a link named; it also gets Quasar's own `selected` look


@dataclass(frozen=True)
class PageContext:
    """What every tab needs from its page: the services, the guard, whether the viewer may act, the
    browser's address (for the audit log), the page's refresh and its one confirmation dialog."""

    services: Services
    guard: SessionGuard
    can_act: bool
    ip: str
    refresh: Callable[[], Awaitable[None]]
    ask: Callable[[str, str, str, Callable[[], Awaitable[Any]]], None]

    async def act(self, work: Callable[[Principal], Any], success: str) -> Any:
        return await self.guard.act(Role.OPERATOR, work, success, then=self.refresh)

    async def read(self, work: Callable[[], Any]) -> Any:
        """A read for a row action, in a worker thread; None (and the user told) when it fails."""
        try:
            return await run.io_bound(work)
        except NoxError as exc:
            ui.notify(exc.message, type="negative")
            return None


def _table(columns: list[dict[str, Any]], row_key: str, no_data: str, marker: str, **kwargs: Any) -> ui.table:
    return (
        ui.table(columns=columns, rows=[], row_key=row_key, **kwargs)
        .props(f"flat bordered no-data-label='{no_data}'")
        .classes("w-full")
        .mark(marker)
    )


def focus_row(table: ui.table, row_id: int) -> None:
    """Highlight the row whose `id` is `row_id` (it stays highlighted as the rows are refreshed) and
    scroll it into view."""
    table.props[":table-row-class-fn"] = f"row => row.id === {int(row_id)} ? 'selected {FOCUS_CLASS}' : ''"
    table.update()
    ui.run_javascript(_SCROLL_TO_FOCUS.replace("ROW", f"#{table.html_id} tr.{FOCUS_CLASS}"))


# Vue renders the row a moment after the update arrives, and an open dialog (the rule editor) puts the
# page's scroll position back when it closes: wait for the row and for no dialog, then scroll (for at
# most two minutes, every 200 ms).
_SCROLL_TO_FOCUS = """(() => {
  let tries = 0;
  const timer = setInterval(() => {
    const row = document.querySelector('ROW');
    if (row && !document.body.classList.contains('q-body--prevent-scroll')) {
      clearInterval(timer);
      row.scrollIntoView({block: 'center'});
    } else if (++tries > 600) {
      clearInterval(timer);
    }
  }, 200);
})()"""


def _actions(buttons: list[tuple[str, str, str]], key: str = "id", show: str = "true") -> str:
    """This page's row buttons emit `{action, key}`, `key` being the row's `key` or `id` field."""
    return row_actions_slot(buttons, field=key, arg="key", show=show)


class ActiveTab:
    """Firing and pending alerts: details for everyone; acknowledge and silence for operators."""

    def __init__(self, ctx: PageContext, details: AlertDetails, silence: SilenceDialog) -> None:
        self.ctx, self.details, self.silence = ctx, details, silence
        self.table = _table(ACTIVE_COLUMNS, "key", "Nothing is firing or pending.", "active-alerts")
        self.table.add_slot(
            "no-data",
            '<div class="row items-center q-gutter-sm"><q-icon name="check_circle" color="positive" '
            'size="sm" /><span>Nothing is firing or pending.</span></div>',
        )
        self.table.add_slot("body-cell-state", STATE_SLOT)
        self.table.add_slot("body-cell-severity", SEVERITY_SLOT)
        buttons = [DETAILS_BUTTON]
        if ctx.can_act:
            buttons += [("ack", "done", "Acknowledge"), ("silence", "notifications_off", "Silence")]
        self.table.add_slot(
            "body-cell-actions", _actions(buttons, key="key", show="props.row.state === 'firing'")
        )
        self.table.on("row-action", self.on_action)

    def show(self, live: list[Any]) -> None:
        self.table.rows = [active_row(a) for a in live]

    async def on_action(self, event: events.GenericEventArguments) -> None:
        key = str(event.args.get("key"))
        alert = next((a for a in self.table.rows if a["key"] == key), None)
        if alert is None:
            return  # a row this page has not listed (yet)
        action, alert_id = event.args.get("action"), alert["id"]
        queries, ip = self.ctx.services.alerts.queries, self.ctx.ip
        if action == "details" and alert_id is not None:
            await self.details.open(alert_id)
        elif action == "ack" and alert_id is not None:
            await self.ctx.act(lambda actor: queries.ack(actor, alert_id, ip=ip), "Acknowledged.")
        elif action == "silence":
            live = await self.ctx.read(lambda: read_live(self.ctx.services)) or []
            view = next((a for a in live if a.key == key), None)
            if view is not None:
                self.silence.open({"alertname": view.rule_name, **view.labels})


class HistoryTab:
    """Resolved alerts, filterable; each row opens its own episode's details."""

    def __init__(self, ctx: PageContext, details: AlertDetails) -> None:
        self.details = details
        self.table = _table(
            HISTORY_COLUMNS, "id", "No alert has resolved yet.", "alert-history", pagination=25
        )
        self.table.add_slot("body-cell-severity", SEVERITY_SLOT)
        self.table.add_slot("body-cell-actions", _actions([DETAILS_BUTTON], key="id"))
        self.table.on("row-action", self.on_action)
        ui.input("Filter").bind_value_to(self.table, "filter").props("dense clearable").classes("w-64")

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.table.rows = rows

    async def on_action(self, event: events.GenericEventArguments) -> None:
        await self.details.open(int(event.args.get("key")))


class RulesTab:
    """The rules: edit, enable or disable, delete (after asking) for operators."""

    def __init__(self, ctx: PageContext, editor: RuleEditor) -> None:
        self.ctx, self.editor = ctx, editor
        self.table = _table(RULE_COLUMNS, "id", "No rules yet.", "alert-rules")
        self.table.add_slot("body-cell-severity", SEVERITY_SLOT)
        if ctx.can_act:
            buttons = [
                ("edit", "edit", "Edit"),
                ("toggle", "power_settings_new", "Enable or disable"),
                ("delete", "delete", "Delete"),
            ]
            self.table.add_slot("body-cell-actions", _actions(buttons))
        self.table.on("row-action", self.on_action)

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.table.rows = rows

    async def on_action(self, event: events.GenericEventArguments) -> None:
        rule_id = int(event.args.get("key"))
        action = event.args.get("action")
        rules, ip = self.ctx.services.alerts.rules, self.ctx.ip
        rule = await self.ctx.read(lambda: rules.get(rule_id))
        if rule is None:
            return
        if action == "edit":
            self.editor.open(rule)
        elif action == "toggle":
            await self.ctx.act(
                lambda actor: rules.update(actor, rule_id, {"enabled": not rule.enabled}, ip=ip),
                f"Rule {rule.name} {'disabled' if rule.enabled else 'enabled'}.",
            )
        elif action == "delete":
            self.ctx.ask(
                "Delete rule",
                f"Delete the rule {rule.name}? Its alert history goes with it.",
                "Delete",
                lambda: self.ctx.act(lambda actor: rules.delete(actor, rule_id, ip=ip), "Rule deleted."),
            )


class SilencesTab:
    """Silences, newest first: a new one, or ending an active one, for operators."""

    def __init__(self, ctx: PageContext, silence: SilenceDialog) -> None:
        self.ctx = ctx
        if ctx.can_act:
            ui.button("New silence", icon="notifications_off", on_click=lambda: silence.open({})).props(
                "flat"
            )
        self.table = _table(SILENCE_COLUMNS, "id", "No silences.", "silences")
        if ctx.can_act:
            self.table.add_slot(
                "body-cell-actions",
                _actions([("end", "stop_circle", "End now")], show="props.row.status === 'active'"),
            )
        self.table.on("row-action", self.on_action)

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.table.rows = rows

    async def on_action(self, event: events.GenericEventArguments) -> None:
        silence_id = int(event.args.get("key"))
        silences, ip = self.ctx.services.alerts.silences, self.ctx.ip
        await self.ctx.act(lambda actor: silences.end(actor, silence_id, ip=ip), "Silence ended.")


class NotifiersTab:
    """Notifiers: test, edit and delete (after asking) for operators; where they send to is shown to
    operators and admins only (the rows say so otherwise)."""

    def __init__(self, ctx: PageContext, dialog: NotifierDialog) -> None:
        self.ctx, self.dialog = ctx, dialog
        if ctx.can_act:
            ui.button("New notifier", icon="add", on_click=lambda: dialog.open(None)).props("flat").mark(
                "new-notifier"
            )
        self.table = _table(NOTIFIER_COLUMNS, "id", "No notifiers yet.", "notifiers")
        if ctx.can_act:
            buttons = [
                ("test", "send", "Send a test"),
                ("edit", "edit", "Edit"),
                ("delete", "delete", "Delete"),
            ]
            self.table.add_slot("body-cell-actions", _actions(buttons))
        self.table.on("row-action", self.on_action)

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.table.rows = rows

    async def on_action(self, event: events.GenericEventArguments) -> None:
        notifier_id = int(event.args.get("key"))
        action = event.args.get("action")
        if action == "test":
            await self.dialog.test(notifier_id)
            return
        notifiers, ip = self.ctx.services.notifiers, self.ctx.ip
        view = await self.ctx.read(lambda: notifiers.get(notifier_id))
        if view is None:
            return
        if action == "edit":
            self.dialog.open(view)
        elif action == "delete":
            self.ctx.ask(
                "Delete notifier",
                f"Delete the notifier {view.name}? Rules that use it stop sending to it.",
                "Delete",
                lambda: self.ctx.act(
                    lambda actor: notifiers.delete(actor, notifier_id, ip=ip), "Notifier deleted."
                ),
            )
