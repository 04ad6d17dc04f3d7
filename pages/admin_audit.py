"""The audit log (admin): filters, a server-paged table, CSV/JSONL download and a chain check.
`/admin/audit?id=N` (a search hit's link) shows event N alone until "Show all events" or a filter.

Thin on purpose: every query, export and check is an `AuditService` call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard
from nox_ui.errors import NoxError
from nox_ui.models import AuditEvent
from nox_ui.parsing import parse_id, parse_time
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import OUTCOMES

PAGE_SIZE = 50


@dataclass
class Shown:
    """Which events the table shows beyond its filters: the page, or one event alone (`?id=`)."""

    offset: int = 0
    event: int | None = None


COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "#", "field": "id", "align": "right"},
    {"name": "ts", "label": "Time (UTC)", "field": "ts", "align": "left"},
    {"name": "actor", "label": "Actor", "field": "actor", "align": "left"},
    {"name": "ip", "label": "Source", "field": "ip", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "details", "label": "Details", "field": "details", "align": "left"},
]


def _value(value: Any) -> str:
    """A detail as a person reads it: a change as `old → new`, an empty string as "", lists joined."""
    if isinstance(value, dict) and set(value) == {"old", "new"}:
        return f"{_value(value['old'])} → {_value(value['new'])}"
    if value == "":
        return '""'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def row_of(event: AuditEvent) -> dict[str, Any]:
    target = " ".join(part for part in (event.target_type, event.target_id) if part)
    if event.target_label:
        target = f"{target} ({event.target_label})" if target else event.target_label
    try:
        details = json.loads(event.details)
        shown = (
            ", ".join(f"{k}: {_value(v)}" for k, v in details.items())
            if isinstance(details, dict)
            else event.details
        )
    except ValueError:
        shown = event.details
    return {
        "id": event.id,
        "ts": event.ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "actor": event.actor_name
        if event.actor_role == "system"
        else f"{event.actor_name} ({event.actor_role})",
        "ip": event.source_ip or "-",
        "action": event.action,
        "target": target,
        "outcome": event.outcome,
        "details": shown,
    }


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/admin/audit", role=Role.ADMIN, title="Audit log")
    async def audit_page(principal: Principal, id: str | None = None) -> None:
        state = Shown()
        checkpoints = await run.io_bound(services.audit.checkpoints, requester=principal)
        if id is not None:
            try:
                state.event = parse_id(id, "audit event")
            except NoxError as exc:
                ui.notify(exc.message, type="warning")

        with frame(guard, principal, "Audit log"):
            ui.label("Audit log").classes("text-h5")
            with ui.row().classes("items-end gap-2 w-full"):
                actor = ui.input("Actor").props("dense clearable").mark("audit-actor")
                action = (
                    ui.input("Action", placeholder="e.g. auth.login")
                    .props("dense clearable")
                    .mark("audit-action")
                )
                outcome = (
                    ui.select(["any", *OUTCOMES], value="any", label="Outcome")
                    .props("dense")
                    .classes("min-w-[120px]")
                    .mark("audit-outcome")
                )
                since = (
                    ui.input("Since", placeholder="ISO 8601 or Unix s")
                    .props("dense clearable")
                    .mark("audit-since")
                )
                until = (
                    ui.input("Until", placeholder="ISO 8601 or Unix s")
                    .props("dense clearable")
                    .mark("audit-until")
                )
                text = ui.input("Search").props("dense clearable").mark("audit-search")
                ui.button("Apply", icon="filter_alt", on_click=lambda: refresh(reset=True)).mark(
                    "audit-apply"
                )
            with ui.row().classes("items-center gap-2") as event_only:
                event_label = ui.label("").mark("audit-event-only")
                ui.button("Show all events", icon="clear", on_click=lambda: refresh(reset=True)).props(
                    "flat dense"
                ).mark("audit-show-all")
            event_only.set_visibility(False)
            error = ui.label("").classes("text-negative")
            table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id")
                .props("flat bordered dense wrap-cells")
                .classes("w-full")
                .mark("audit-table")
            )
            with ui.row().classes("items-center gap-2"):
                back = ui.button(icon="chevron_left", on_click=lambda: page_by(-PAGE_SIZE)).props(
                    "flat dense"
                )
                position = ui.label("").mark("audit-position")
                forward = ui.button(icon="chevron_right", on_click=lambda: page_by(PAGE_SIZE)).props(
                    "flat dense"
                )
                ui.space()
                ui.button("CSV", icon="download", on_click=lambda: download("csv")).mark("audit-csv")
                ui.button("JSONL", icon="download", on_click=lambda: download("jsonl")).mark("audit-jsonl")
                ui.button("Verify chain", icon="verified", on_click=lambda: verify()).mark("audit-verify")
            verdict = ui.label("").mark("audit-verdict")
            if checkpoints:
                latest = checkpoints[-1]
                ui.label(
                    f"Events before {latest.before[:19].replace('T', ' ')} UTC are archived "
                    f"(the latest {latest.count} in {latest.file})."
                ).classes("text-caption").mark("audit-archived")

        for field in (actor, action, since, until, text):
            field.on("keydown.enter", lambda: refresh(reset=True))
        outcome.on_value_change(lambda: refresh(reset=True))

        async def refresh(reset: bool = False) -> None:
            actor_now = await guard.allow(Role.ADMIN)
            if actor_now is None:
                return
            if reset:
                state.offset, state.event = 0, None  # a filter or "Show all" ends the one-event view
            error.text = ""
            try:
                page = await run.io_bound(
                    services.audit.query,
                    requester=actor_now,
                    actor=actor.value or None,
                    action=action.value or None,
                    outcome=None if outcome.value == "any" else outcome.value,
                    since=parse_time(since.value or None, "since"),
                    until=parse_time(until.value or None, "until"),
                    q=text.value or None,
                    limit=PAGE_SIZE,
                    offset=state.offset,
                    event_id=state.event,
                )
            except NoxError as exc:
                error.text = exc.message
                return
            if page is None:  # the app is shutting down
                return
            if state.event is not None and not page.total:
                gone = ": it may have been archived" if checkpoints else ""
                ui.notify(f"audit event {state.event} not found{gone}", type="warning")
                await refresh(reset=True)
                return
            event_label.text = f"Showing event #{state.event} only." if state.event is not None else ""
            event_only.set_visibility(state.event is not None)
            table.rows = [row_of(event) for event in page.events]
            first = state.offset + 1 if page.total else 0
            position.text = f"{first}-{state.offset + len(page.events)} of {page.total}"
            back.set_enabled(state.offset > 0)
            forward.set_enabled(state.offset + PAGE_SIZE < page.total)

        async def page_by(step: int) -> None:
            state.offset = max(0, state.offset + step)
            await refresh()

        async def download(fmt: str) -> None:
            actor_now = await guard.allow(Role.ADMIN)
            if actor_now is None:
                return
            content = await run.io_bound(lambda: "".join(services.audit.export(fmt, requester=actor_now)))
            if content is None:  # the app is shutting down
                return
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            media = "text/csv" if fmt == "csv" else "application/x-ndjson"
            ui.download.content(content.encode("utf-8"), f"nox-audit-{stamp}.{fmt}", media_type=media)

        async def verify() -> None:
            actor_now = await guard.allow(Role.ADMIN)
            if actor_now is None:
                return
            result = await run.io_bound(services.audit.verify, requester=actor_now)
            if result is None:  # the app is shutting down
                return
            if result.ok:
                verdict.text = f"Chain intact: {result.checked} events verified."
                verdict.classes(replace="text-positive")
            else:
                where = f" at event {result.first_bad}" if result.first_bad is not None else ""
                verdict.text = f"Chain broken{where}. {result.reason[:1].upper()}{result.reason[1:]}."
                verdict.classes(replace="text-negative")

        await refresh()
