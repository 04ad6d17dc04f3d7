"""The notifier dialog of /alerts: create or edit a notifier of any registered kind, and send a test
message through one. The form is built from the registry (nox_ui/alerts/kinds/): the kind select lists
the registered kinds, and each kind's `FormField`s become its inputs, shown while that kind is chosen.
Every action re-checks the operator role with `await guard.allow` first; reads and writes run in a worker
thread (`run.io_bound`), never on the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import run, ui
from nicegui.elements.mixins.value_element import ValueElement

from nox_ui.alerts import kinds
from nox_ui.alerts.kinds import FormField, NotifierKind
from nox_ui.alerts.notify import NotifierView
from nox_ui.app import Services
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Role


def notifier_target(view: NotifierView) -> str:
    """Where a notifier sends to, as one line (shown to operators and admins only)."""
    return kinds.summary(view.kind, view.config)


def _input(field: FormField) -> ValueElement[Any]:
    """One input for a form field; `.value` holds what `NotifierKind.form_config` reads."""
    element: ValueElement[Any]
    if field.input == "switch":
        element = ui.switch(field.label)
    elif field.input == "number":
        element = ui.number(field.label, placeholder=field.placeholder or None).props("outlined dense")
    elif field.input == "lines":
        element = ui.textarea(field.label, placeholder=field.placeholder or None).props(
            "outlined dense autogrow"
        )
    elif field.input == "password":
        element = ui.input(
            field.label, placeholder=field.placeholder or None, password=True, password_toggle_button=True
        ).props("outlined dense autocomplete=new-password")
    else:
        element = ui.input(field.label, placeholder=field.placeholder or None).props("outlined dense")
    if field.help and field.input != "switch":
        element.props["hint"] = field.help
    return element.classes("w-full")


class NotifierDialog:
    """Built once per page (inside its client); `open(view)` edits a notifier, `open(None)` makes a new
    one; `test(id)` sends a test message and tells how it went. `on_saved` runs after a save (a refresh).

    Each input is marked `notifier-<kind>-<field>` and `notifier-<field>` (e.g. `notifier-url`)."""

    def __init__(
        self, services: Services, guard: SessionGuard, on_saved: Callable[[], Awaitable[None]]
    ) -> None:
        self.notifiers = services.notifiers
        self.guard = guard
        self.on_saved = on_saved
        self.ip = client_ip()
        self.editing: int | None = None
        self.kinds: dict[str, NotifierKind] = {kind.name: kind for kind in kinds.all_kinds()}
        first = next(iter(self.kinds))
        self.inputs: dict[str, dict[str, ValueElement[Any]]] = {}
        with ui.dialog() as self.dialog, card().classes("q-pa-md gap-2 w-full max-w-lg"):
            self.title = ui.label("New notifier").classes("text-h6")
            self.name = ui.input("Name").props("outlined dense").classes("w-full").mark("notifier-name")
            labels = {name: kind.label for name, kind in self.kinds.items()}
            self.kind = (
                ui.select(labels, value=first, label="Kind")
                .props("outlined dense")
                .classes("w-full")
                .mark("notifier-kind")
            )
            for name, kind in self.kinds.items():
                self.inputs[name] = {
                    field.name: _input(field).mark(f"notifier-{name}-{field.name} notifier-{field.name}")
                    for field in kind.fields
                }
            self.error = ui.label("").classes("text-negative text-body2").props("role=alert")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", on_click=self.save).props("unelevated color=primary").mark("notifier-save")
        self.kind.on_value_change(self._show_kind_fields)

    def _show_kind_fields(self) -> None:
        for name, inputs in self.inputs.items():
            for element in inputs.values():
                element.set_visibility(name == self.kind.value)

    def open(self, view: NotifierView | None) -> None:
        self.editing = view.id if view else None
        self.title.text = f"Edit notifier {view.name}" if view else "New notifier"
        self.name.value = view.name if view else ""
        self.kind.value = view.kind if view and view.kind in self.kinds else next(iter(self.kinds))
        self.kind.set_enabled(view is None)
        for name, kind in self.kinds.items():
            values = kind.form_values(view.config if view and view.kind == name else None)
            for field_name, element in self.inputs[name].items():
                element.value = values[field_name]
        self.error.text = ""
        self._show_kind_fields()
        self.dialog.open()

    def _config(self) -> dict[str, Any]:
        kind = self.kinds[self.kind.value]
        return kind.form_config({name: element.value for name, element in self.inputs[kind.name].items()})

    async def save(self) -> None:
        self.error.text = ""
        actor = await self.guard.allow(Role.OPERATOR)
        if actor is None:
            return
        notifier_id, ip = self.editing, self.ip
        name, kind, config = self.name.value or "", self.kind.value, self._config()
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
        actor = await self.guard.allow(Role.OPERATOR)
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
