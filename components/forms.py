"""Small form helpers shared by the screens."""

from __future__ import annotations

from nicegui import ui


def password_input(label: str, *, autocomplete: str = "current-password") -> ui.input:
    field = ui.input(label, password=True, password_toggle_button=True).props(
        f"outlined autocomplete={autocomplete}"
    )
    return field.classes("w-full")


def text_input(label: str, *, autocomplete: str = "off", autofocus: bool = False) -> ui.input:
    props = f"outlined autocomplete={autocomplete}" + (" autofocus" if autofocus else "")
    return ui.input(label).props(props).classes("w-full")


def error_banner() -> ui.label:
    """A red line that screen readers announce; empty and hidden until set."""
    banner = ui.label("").classes("text-negative text-body2").props("role=alert aria-live=assertive")
    banner.bind_visibility_from(banner, "text", backward=bool)
    return banner
