"""One alert and its delivery log, in a dialog (also what `/alerts?id=` in a notification opens). The
delivery log is shown to operators and admins only, as in the API; both are read in a worker thread."""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from nox_ui.alerts.queries import AlertView
from nox_ui.app import Services
from nox_ui.components.alert_format import col, number, when
from nox_ui.components.session import SessionGuard
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Role

DELIVERY_COLUMNS = [
    col("notifier", "Notifier"),
    col("event", "Message"),
    col("status", "Result"),
    col("attempts", "Attempts", "right"),
    col("when", "Sent (UTC)"),
    col("error", "Last error"),
]


def facts_of(alert: AlertView) -> list[tuple[str, str]]:
    return [
        ("Series", alert.series),
        ("Severity", alert.severity),
        ("Value", number(alert.value)),
        ("Threshold", number(alert.threshold)),
        ("Fired", when(alert.fired_at)),
        ("Resolved", when(alert.resolved_at)),
        ("Acknowledged", f"{alert.acked_by} at {when(alert.acked_at)}" if alert.acked_by else "-"),
        ("Silenced", "yes" if alert.silenced else "no"),
    ]


class AlertDetails:
    """Built once per page; `await open(alert_id)` reads the alert (and, for operators, its deliveries)
    and shows them. `can_see_deliveries` is the page's role; each opening re-checks it."""

    def __init__(self, services: Services, guard: SessionGuard, *, can_see_deliveries: bool) -> None:
        self.queries = services.alerts.queries
        self.notifiers = services.notifiers
        self.guard = guard
        with (
            ui.dialog() as self.dialog,
            card().classes("q-pa-md gap-2 w-full max-w-3xl").mark("alert-details"),
        ):
            self.title = ui.label("").classes("text-h6").mark("alert-title")
            self.facts = ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-body2")
            ui.label("Delivery log").classes("text-subtitle2 q-mt-sm")
            self.deliveries: ui.table | None = None
            if can_see_deliveries:
                self.deliveries = (
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
                ui.button("Close", on_click=self.dialog.close).props("flat")

    def _deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        return [
            {
                "id": d.id,
                "notifier": f"{d.notifier_name} ({d.notifier_kind})",
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "when": when(d.sent_at),
                "error": d.last_error or "-",
            }
            for d in self.notifiers.deliveries_for_alert(alert_id)
        ]

    async def open(self, alert_id: int) -> None:
        try:
            alert = await run.io_bound(self.queries.get, alert_id)
        except NoxError as exc:
            ui.notify(exc.message, type="negative")
            return
        if alert is None:  # the app is shutting down
            return
        deliveries: list[dict[str, Any]] | None = None
        if self.deliveries is not None and await self.guard.allow(Role.OPERATOR) is not None:
            deliveries = await run.io_bound(self._deliveries, alert_id)
        self.title.text = f"{alert.rule_name}: {alert.state}"
        self.facts.clear()
        with self.facts:
            for name, value in facts_of(alert):
                ui.label(name).classes("nox-muted")
                ui.label(value)
        if self.deliveries is not None and deliveries is not None:
            self.deliveries.rows = deliveries
        self.dialog.open()
