"""Alerts: what is firing or pending now (ack, silence), history, rules with a preview, silences and
notifiers with a test button. Thin on purpose: rules, evaluation, silences and delivery live in
`nox_ui/alerts`; every action re-checks the operator role with `await guard.allow` first, and every read
runs in a worker thread, never on the event loop. An alert's delivery log and where notifiers send to
are shown to operators and admins only, as in the API.

The page (`register`) composes the dialogs of `nox_ui.components` (rule editor, silence dialog,
notifier dialog, alert details) and one builder per tab (`tabs`); `data` reads what the tabs show.

Links into it (search hits, notifications) name what to open: `?id=N` an alert's details (on Active or
History by its state), `?tab=rules&rule=N` a rule (highlighted; its editor opened for operators),
`?tab=silences&silence=N` and `?tab=notifiers&notifier=N` (operators) a highlighted row. A bad or
unknown id is told in a notification and the page renders as usual."""

from __future__ import annotations

from nicegui import run, ui

from nox_ui.alerts.evaluation import AlertCounts
from nox_ui.alerts.queries import AlertView
from nox_ui.app import Services
from nox_ui.components.alert_details import AlertDetails
from nox_ui.components.forms import ConfirmDialog
from nox_ui.components.frame import frame
from nox_ui.components.notifier_dialog import NotifierDialog
from nox_ui.components.rule_editor import RuleEditor
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.signals import ui_event
from nox_ui.components.silence_dialog import SilenceDialog
from nox_ui.pages.alerts.data import Focus, focus_of, read_all, read_live
from nox_ui.pages.alerts.tabs import (
    ActiveTab,
    HistoryTab,
    NotifiersTab,
    PageContext,
    RulesTab,
    SilencesTab,
    focus_row,
)
from nox_ui.roles import Principal, Role

LIVE_REFRESH_SECONDS = 3.0


def register(services: Services, guard: SessionGuard) -> None:
    alerting = services.alerts

    @guard.page("/alerts", title="Alerts")
    async def alerts_page(
        principal: Principal,
        id: str | None = None,  # strings, parsed by `focus_of`: a bad id is a notification, not a 422
        tab: str | None = None,
        rule: str | None = None,
        silence: str | None = None,
        notifier: str | None = None,
    ) -> None:
        can_act = principal.role.allows(Role.OPERATOR)
        link = {"tab": tab, "alert": id, "rule": rule, "silence": silence, "notifier": notifier}
        focus: Focus = await run.io_bound(focus_of, services, link, can_see_notifiers=can_act) or Focus()
        kept_silence = focus.row if focus.tab == "silences" else None

        def show_live(live: list[AlertView]) -> None:
            active.show(live)
            counts.text = (
                f"{sum(a.state == 'firing' for a in live)} firing · "
                f"{sum(a.state == 'pending' for a in live)} pending"
            )

        async def refresh_live() -> None:
            """What changes with every sample: the active alerts and their counts."""
            live = await run.io_bound(read_live, services)
            if live is not None:
                show_live(live)

        async def refresh() -> None:
            data = await run.io_bound(
                lambda: read_all(services, show_targets=can_act, keep_silence=kept_silence)
            )
            if data is None:  # the app is shutting down
                return
            show_live(data.live)
            history.show(data.history)
            rules.show(data.rules)
            silences.show(data.silences)
            notifiers.show(data.notifiers)
            editor.set_notifiers(data.names)

        ctx = PageContext(services, guard, can_act, client_ip(), refresh, ConfirmDialog("confirm-delete").ask)
        metric_names = sorted(info.name for info in services.metrics.names())  # from memory
        editor = RuleEditor(services, guard, metric_names, refresh)
        silence_dialog = SilenceDialog(services, guard, refresh)
        notifier_dialog = NotifierDialog(services, guard, refresh)
        details = AlertDetails(services, guard, can_see_deliveries=can_act)

        with frame(guard, principal, "Alerts"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Alerts").classes("text-h5")
                counts = ui.label("").classes("text-body2 nox-muted").mark("alert-counts")
                ui.space()
                if can_act:
                    ui.button("New rule", icon="add_alert", on_click=lambda: editor.open(None)).props(
                        "unelevated color=primary"
                    ).mark("new-rule")
            with ui.tabs().classes("w-full").props("align=left no-caps inline-label") as tab_bar:
                tab_active = ui.tab("Active", icon="notifications_active")
                tab_history = ui.tab("History", icon="history")
                tab_rules = ui.tab("Rules", icon="rule")
                tab_silences = ui.tab("Silences", icon="notifications_off")
                tab_notifiers = ui.tab("Notifiers", icon="send")
            tab_of = {
                "active": tab_active,
                "history": tab_history,
                "rules": tab_rules,
                "silences": tab_silences,
                "notifiers": tab_notifiers,
            }
            with (
                ui.tab_panels(tab_bar, value=tab_of[focus.tab])
                .classes("w-full bg-transparent")
                .mark("alert-tabs")
            ):
                with ui.tab_panel(tab_active).classes("q-pa-none"):
                    active = ActiveTab(ctx, details, silence_dialog)
                with ui.tab_panel(tab_history).classes("q-pa-none"):
                    history = HistoryTab(ctx, details)
                with ui.tab_panel(tab_rules).classes("q-pa-none"):
                    rules = RulesTab(ctx, editor)
                with ui.tab_panel(tab_silences).classes("q-pa-none gap-2"):
                    silences = SilencesTab(ctx, silence_dialog)
                with ui.tab_panel(tab_notifiers).classes("q-pa-none gap-2"):
                    notifiers = NotifiersTab(ctx, notifier_dialog)

        async def first_load() -> None:
            """The tables, then what the link names in them (the editor needs the notifier names)."""
            await refresh()
            if focus.row is not None:
                tables = {
                    "active": active.table,
                    "history": history.table,
                    "rules": rules.table,
                    "silences": silences.table,
                    "notifiers": notifiers.table,
                }
                focus_row(tables[focus.tab], focus.row)
            if focus.rule is not None and can_act:
                editor.open(focus.rule)

        ui.timer(0, first_load, once=True)
        if focus.problem:
            ui.notify(focus.problem, type="warning")
        if focus.alert is not None:
            await details.open(focus.alert)

        # Firing, resolving and acks arrive at once; values and pending alerts every few seconds.
        async def on_changed(_counts: AlertCounts) -> None:
            await refresh()

        ui_event(alerting.engine.changed).subscribe(on_changed)
        ui.timer(LIVE_REFRESH_SECONDS, refresh_live)
