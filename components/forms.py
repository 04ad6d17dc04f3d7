"""Small form helpers shared by the screens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nicegui import ui
from nicegui.events import GenericEventArguments

from nox_ui.components.theme import apply_theme, card


def password_input(label: str, *, autocomplete: str = "current-password") -> ui.input:
    field = ui.input(label, password=True, password_toggle_button=True).props(
        f"outlined autocomplete={autocomplete}"
    )
    return field.classes("w-full")


def text_input(label: str, *, autocomplete: str = "off", autofocus: bool = False) -> ui.input:
    props = f"outlined autocomplete={autocomplete}" + (" autofocus" if autofocus else "")
    return ui.input(label).props(props).classes("w-full")


def on_submit(
    trigger: ui.element, event: str, handler: Callable[[list[str]], Awaitable[None]], *fields: ui.input
) -> None:
    """Call `handler(values)` on `event` with the fields' values as the browser shows them at that moment.

    NiceGUI holds back a page's events until its websocket handshake is done, each on its own 10 ms
    retry timer: an Enter pressed just as the page connects reaches the server before the keystrokes
    typed earlier, whose values the fields' `.value` would still lack (a sign-in typed right after the
    page loaded was refused). So the values travel in the submit event itself. Without them (NiceGUI's
    simulated test user runs no JavaScript) the fields' server-side values are used."""
    ids = ", ".join(str(field.id) for field in fields)
    js_handler = f"() => emit([{ids}].map((id) => getElement(id)?.inputValue ?? null))"

    async def submit(event: GenericEventArguments) -> None:
        sent = event.args
        if isinstance(sent, list) and len(sent) == len(fields) and all(isinstance(v, str) for v in sent):
            values = [str(value) for value in sent]
            for field, value in zip(fields, values, strict=True):
                field.value = value  # the server's copy catches up with what was submitted
        else:
            values = [field.value or "" for field in fields]
        await handler(values)

    trigger.on(event, submit, js_handler=js_handler)


def error_banner() -> ui.label:
    """A red line that screen readers announce; empty and hidden until set."""
    banner = ui.label("").classes("text-negative text-body2").props("role=alert aria-live=assertive")
    banner.bind_visibility_from(banner, "text", backward=bool)
    return banner


@contextmanager
def auth_card(title: str) -> Iterator[None]:
    """The centred, logo-topped card of the sign-in and setup screens."""
    apply_theme()
    with ui.column().classes("absolute-center items-stretch w-full max-w-sm q-pa-md"):
        with ui.row().classes("items-center gap-2 justify-center q-mb-md"):
            ui.icon("dns", size="md").classes("text-primary")
            ui.label("Nox UI").classes("text-h5 text-weight-bold")
        with card().classes("w-full q-pa-lg gap-3"):
            ui.label(title).classes("text-h6")
            yield


class ConfirmDialog:
    """The one confirmation step before every destructive action: `ask(title, text, button, action)`
    opens it; the red button closes it and awaits `action`."""

    def __init__(self, marker: str = "confirm") -> None:
        self._action: Callable[[], Awaitable[Any]] | None = None
        with ui.dialog() as self.dialog, card().classes("q-pa-md gap-3 min-w-[320px]"):
            self.title = ui.label("").classes("text-h6")
            self.text = ui.label("").classes("text-body2 nox-muted")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                self.button = (
                    ui.button("Confirm", on_click=self._confirmed)
                    .props("unelevated color=negative")
                    .mark(marker)
                )

    def ask(self, title: str, text: str, button: str, action: Callable[[], Awaitable[Any]]) -> None:
        self.title.text = title
        self.text.text = text
        self.button.text = button
        self._action = action
        self.dialog.open()

    async def _confirmed(self) -> None:
        self.dialog.close()
        action, self._action = self._action, None
        if action is not None:
            await action()
