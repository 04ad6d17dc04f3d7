"""The silence dialog of /alerts: matchers (one label=value a line), a duration and a comment. Operators
only: saving re-checks the role with `await guard.allow` and writes in a worker thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Role

DURATIONS = {3600: "1 hour", 4 * 3600: "4 hours", 24 * 3600: "1 day", 7 * 24 * 3600: "1 week"}


def parse_matchers(text: str) -> dict[str, str]:
    """`label=value` lines into a dict; blank lines are skipped. Raises ValueError naming a bad line."""
    matchers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a label=value line: {line.strip()!r}")
        matchers[key.strip()] = value.strip()
    return matchers


class SilenceDialog:
    """Built once per page; `open(matchers)` starts a silence prefilled with these label matchers."""

    def __init__(
        self, services: Services, guard: SessionGuard, on_saved: Callable[[], Awaitable[None]]
    ) -> None:
        self.silences = services.alerts.silences
        self.guard = guard
        self.on_saved = on_saved
        self.ip = client_ip()
        with (
            ui.dialog() as self.dialog,
            card().classes("q-pa-md gap-2 w-full max-w-lg").mark("silence-dialog"),
        ):
            ui.label("New silence").classes("text-h6")
            ui.label(
                "Alerts whose labels match every line are not notified while the silence lasts."
            ).classes("text-caption nox-muted")
            self.matchers = (
                ui.textarea("Matchers, one label=value per line (alertname = the rule's name)")
                .props("outlined dense autogrow")
                .classes("w-full")
                .mark("silence-matchers")
            )
            self.duration = ui.select(DURATIONS, value=3600, label="For").props("outlined dense")
            self.comment = (
                ui.input("Comment").props("outlined dense").classes("w-full").mark("silence-comment")
            )
            self.error = (
                ui.label("").classes("text-negative text-body2").props("role=alert").mark("silence-error")
            )
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Silence", on_click=self.save).props("unelevated color=primary").mark(
                    "silence-save"
                )

    def open(self, matchers: dict[str, str]) -> None:
        self.matchers.value = "\n".join(f"{k}={v}" for k, v in matchers.items())
        self.comment.value = ""
        self.error.text = ""
        self.dialog.open()

    async def save(self) -> None:
        self.error.text = ""
        try:
            matchers = parse_matchers(self.matchers.value or "")
        except ValueError as exc:
            self.error.text = str(exc)
            return
        actor = await self.guard.allow(Role.OPERATOR)
        if actor is None:
            return
        comment, seconds, ip = self.comment.value or "", int(self.duration.value), self.ip
        try:
            await run.io_bound(
                lambda: self.silences.create(actor, matchers, comment, duration_seconds=seconds, ip=ip)
            )
        except NoxError as exc:
            self.error.text = exc.message
            return
        self.dialog.close()
        ui.notify("Silenced.", type="positive")
        await self.on_saved()
