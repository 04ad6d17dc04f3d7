"""The panel-health banner: one line per failing background job, for operators and admins, at the top of
every framed page. It appears and disappears live (the supervisor's `changed` through `ui_event`), so
a full disk shows while it lasts and the line goes once the job has recovered by itself.

Lines say what stops working and why in plain words ("the disk is full"), never the exception text;
admins get a link to /admin/diagnostics, where the last error is."""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui

from nox_ui.components.signals import ui_event
from nox_ui.roles import Principal, Role
from nox_ui.supervisor import STORAGE_JOB, JobState, Supervisor

DIAGNOSTICS_PATH = "/admin/diagnostics"

# What stops working while a job fails, and what happens about it.
_EFFECT: dict[str, tuple[str, str]] = {
    "history": (
        "History is not being saved",
        "The panel keeps the last minutes in memory and retries by itself.",
    ),
    STORAGE_JOB: (
        "Changes cannot be saved",
        "Sign-ins and audited actions fail until there is room; the panel recovers by itself.",
    ),
    "search": ("The search index is not being updated", "The panel retries by itself."),
    "delivery": ("Notifications are not being sent", "Pending ones are kept and retried."),
    "alerts": ("Alert rules are not being evaluated or stored", "The panel retries by itself."),
    "sampler": ("Live metrics are not being collected", "The panel retries by itself."),
    "housekeeping": ("Retention (archiving old events) is failing", "It runs again within the hour."),
    "plugins": ("Plugin changes are not being picked up", "The panel retries by itself."),
}


def banner_line(state: JobState) -> str:
    effect, remedy = _EFFECT.get(
        state.name, (f"The background job {state.name!r} is failing", "It restarts by itself.")
    )
    since = (
        f" (since {datetime.fromtimestamp(state.failing_since, UTC).strftime('%H:%M')} UTC)"
        if state.failing_since is not None
        else ""
    )
    return f"{effect}: {state.problem or 'an unexpected error'}{since}. {remedy}"


def health_banner(supervisor: Supervisor, principal: Principal) -> None:
    """Draw the banner for `principal` (nothing for viewers) and keep it current."""
    if not principal.role.allows(Role.OPERATOR):
        return
    admin = principal.role.allows(Role.ADMIN)
    box = ui.column().classes("w-full gap-1 q-px-md q-pt-sm").mark("health-banner")

    def show() -> None:
        box.clear()
        failing = supervisor.failing()
        box.set_visibility(bool(failing))
        with box:
            for state in failing:
                with ui.row().classes("w-full items-center no-wrap gap-2 q-pa-sm rounded-borders bg-warning"):
                    ui.icon("warning").classes("text-dark")
                    ui.label(banner_line(state)).classes("text-body2 text-dark").mark(f"health-{state.name}")
                    if admin:
                        ui.space()
                        ui.link("Diagnostics", DIAGNOSTICS_PATH).classes("text-dark text-body2")

    show()
    event = ui_event(supervisor.changed)

    def on_change(_state: JobState) -> None:
        if box.is_deleted:  # the page is gone
            event.unsubscribe(on_change)
            return
        show()

    event.subscribe(on_change)
