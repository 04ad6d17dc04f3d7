"""The notifier dialog of /alerts: create or edit a notifier (webhook, email, Apprise), and send a test
message through one. Every action re-checks the operator role with `guard.require` first; reads and
writes run in a worker thread (`run.io_bound`), never on the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import run, ui

from nox_ui.alerts.notify import NotifierView
from nox_ui.app import Services
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Role

NOTIFIER_KINDS = {"webhook": "Webhook", "email": "Email", "apprise": "Apprise (ntfy, Slack, ...)"}


def notifier_target(view: NotifierView) -> str:
    """Where a notifier sends to, as one line (shown to operators and admins only)."""
    config = view.config
    if view.kind == "webhook":
        return str(config.get("url", ""))
    if view.kind == "email":
        return ", ".join(config.get("to", []))
    return ", ".join(str(u) for u in config.get("urls", []))


class NotifierDialog:
    """Built once per page (inside its client); `open(view)` edits a notifier, `open(None)` makes a new
    one; `test(id)` sends a test message and tells how it went. `on_saved` runs after a save (a refresh)."""

    def __init__(
        self, services: Services, guard: SessionGuard, on_saved: Callable[[], Awaitable[None]]
    ) -> None:
        self.notifiers = services.notifiers
        self.guard = guard
        self.on_saved = on_saved
        self.ip = client_ip()
        self.editing: int | None = None
        with ui.dialog() as self.dialog, card().classes("q-pa-md gap-2 w-full max-w-lg"):
            self.title = ui.label("New notifier").classes("text-h6")
            self.name = ui.input("Name").props("outlined dense").classes("w-full").mark("notifier-name")
            self.kind = ui.select(NOTIFIER_KINDS, value="webhook", label="Kind").props("outlined dense")
            self.webhook_url = ui.input("URL").props("outlined dense").classes("w-full").mark("notifier-url")
            self.webhook_secret = (
                ui.input("Signing secret (optional, write-only)", password=True, password_toggle_button=True)
                .props("outlined dense autocomplete=new-password")
                .classes("w-full")
            )
            self.email_to = (
                ui.input("To (comma-separated addresses)").props("outlined dense").classes("w-full")
            )
            self.apprise_urls = (
                ui.textarea("Apprise URLs, one per line (write-only)")
                .props("outlined dense autogrow")
                .classes("w-full")
            )
            self.error = ui.label("").classes("text-negative text-body2").props("role=alert")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", on_click=self.save).props("unelevated color=primary").mark("notifier-save")
        self.kind.on_value_change(self._show_kind_fields)

    def _show_kind_fields(self) -> None:
        kind = self.kind.value
        self.webhook_url.set_visibility(kind == "webhook")
        self.webhook_secret.set_visibility(kind == "webhook")
        self.email_to.set_visibility(kind == "email")
        self.apprise_urls.set_visibility(kind == "apprise")

    def open(self, view: NotifierView | None) -> None:
        self.editing = view.id if view else None
        self.title.text = f"Edit notifier {view.name}" if view else "New notifier"
        self.name.value = view.name if view else ""
        self.kind.value = view.kind if view else "webhook"
        self.kind.set_enabled(view is None)
        self.webhook_url.value = str(view.config.get("url", "")) if view and view.kind == "webhook" else ""
        self.webhook_secret.value = ""
        self.email_to.value = ", ".join(view.config.get("to", [])) if view and view.kind == "email" else ""
        self.apprise_urls.value = ""
        self.error.text = ""
        self._show_kind_fields()
        self.dialog.open()

    def _config(self) -> dict[str, Any]:
        kind = self.kind.value
        if kind == "webhook":
            config: dict[str, Any] = {"url": (self.webhook_url.value or "").strip()}
            if self.webhook_secret.value:
                config["secret"] = self.webhook_secret.value
            return config
        if kind == "email":
            return {"to": [a.strip() for a in (self.email_to.value or "").split(",") if a.strip()]}
        return {"urls": [u.strip() for u in (self.apprise_urls.value or "").splitlines() if u.strip()]}

    async def save(self) -> None:
        self.error.text = ""
        actor = self.guard.require(Role.OPERATOR)
        if actor is None:
            return
        notifier_id, ip = self.editing, self.ip
        name, kind, config = self.name.value or "", self.kind.value, self._config()
        if notifier_id is not None and kind == "apprise" and not config["urls"]:
            config = {}  # leave the stored (secret) URLs as they are
        try:
            if notifier_id is None:
                await run.io_bound(lambda: self.notifiers.create(actor, name, kind, config, ip=ip))
            else:
                await run.io_bound(
                    lambda: self.notifiers.update(actor, notifier_id, name=name, config=config or None, ip=ip)
                )
        except NoxError as exc:
            self.error.text = exc.message
            return
        self.dialog.close()
        ui.notify(f"Notifier {name} saved.", type="positive")
        await self.on_saved()

    async def test(self, notifier_id: int) -> None:
        actor = self.guard.require(Role.OPERATOR)
        if actor is None:
            return
        ui.notify("Sending a test message...", type="info")
        try:
            sent = await run.io_bound(self.notifiers.send_test, actor, notifier_id, ip=self.ip)
            if sent is None:  # the app is shutting down
                return
            result = await run.io_bound(self.notifiers.wait_for_delivery, sent.id, 20.0)
        except NoxError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        if result is None:  # the app is shutting down
            return
        if result.status == "sent":
            ui.notify(f"Test message delivered by {result.notifier_name}.", type="positive")
        elif result.status == "failed":
            ui.notify(f"Test failed: {result.last_error}", type="negative", multi_line=True)
        else:
            ui.notify(
                f"Still trying ({result.attempts} attempt(s)): {result.last_error or 'no answer yet'}",
                type="warning",
                multi_line=True,
            )
