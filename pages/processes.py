"""The process view: a live, server-sorted and server-paged table; details; TERM/KILL for operators."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from nicegui import run, ui
from nicegui.events import GenericEventArguments

from nox_ui.app import Services
from nox_ui.components.format import format_bytes
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.roles import Principal, Role
from nox_ui.services.processes import ProcessDetails, ProcessInfo, ProcessPage

REFRESH_SECONDS = 2.0
PAGE_SIZES = [25, 50, 100, 200]
DASH = "—"
_CMDLINE_MAX = 2000  # the tooltip shows this much of a long command line

# Column names are the service's sort keys, so Quasar's sortBy goes to ProcessService unchanged.
_NUMERIC = {"sortable": True, "align": "right", "sortOrder": "da"}  # first click sorts descending
COLUMNS: list[dict[str, Any]] = [
    {"name": "pid", "label": "PID", "field": "pid", "sortable": True, "align": "right"},
    {"name": "name", "label": "Name", "field": "name", "sortable": True, "align": "left",
     "classes": "nox-ellipsis", "style": "max-width: 14rem"},
    {"name": "user", "label": "User", "field": "user", "sortable": True, "align": "left",
     "classes": "nox-ellipsis", "style": "max-width: 8rem"},
    {"name": "cpu", "label": "CPU %", "field": "cpu", **_NUMERIC},
    {"name": "memory", "label": "Mem %", "field": "memory", **_NUMERIC},
    {"name": "rss", "label": "RSS", "field": "rss", **_NUMERIC},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "threads", "label": "Threads", "field": "threads", **_NUMERIC},
    {"name": "start", "label": "Started (UTC)", "field": "start", **_NUMERIC},
    {"name": "cmdline", "label": "Command line", "field": "cmdline", "align": "left",
     "classes": "nox-fill"},
]  # fmt: skip

_CSS = """
.nox-proc-table { background: transparent; }
.nox-proc-table tbody tr { cursor: pointer; }
.nox-proc-table td.nox-ellipsis { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
/* The command line takes the width the other columns leave, and is cut with an ellipsis. */
.nox-proc-table td.nox-fill { width: 100%; max-width: 0; min-width: 12rem; }
.nox-proc-table td.nox-fill > div { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.nox-break { word-break: break-all; white-space: pre-wrap; }
.nox-code { background: rgba(100, 116, 139, .12); }
"""

# The command line cell: truncated by CSS, the whole line in a tooltip; kernel threads as [name];
# for a viewer, the executable name with a note that the arguments are withheld.
_CMDLINE_SLOT = r"""
<q-td :props="props">
  <div v-if="props.row.cmdline_hidden">{{ props.row.cmdline }}
    <span class="nox-muted text-caption">· arguments hidden</span></div>
  <div v-else-if="props.row.cmdline">{{ props.row.cmdline }}</div>
  <div v-else class="nox-muted">[{{ props.row.name }}]</div>
  <q-tooltip v-if="props.row.cmdline && !props.row.cmdline_hidden" max-width="40rem" anchor="bottom left" self="top left"
             class="text-body2 nox-break">{{ props.row.cmdline }}</q-tooltip>
</q-td>
"""


def _number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _started(create_time: float | None) -> str:
    if create_time is None:
        return DASH
    started = datetime.fromtimestamp(create_time, UTC)
    if started.date() == datetime.now(UTC).date():
        return started.strftime("%H:%M:%S")
    return started.strftime("%Y-%m-%d %H:%M")


def row_of(info: ProcessInfo) -> dict[str, Any]:
    return {
        "pid": info.pid,
        "name": info.name or DASH,
        "user": info.username or DASH,
        "cpu": _number(info.cpu_percent),
        "memory": _number(info.memory_percent),
        "rss": DASH if info.rss_bytes is None else format_bytes(info.rss_bytes),
        "status": info.status or DASH,
        "threads": DASH if info.num_threads is None else info.num_threads,
        "start": _started(info.create_time),
        "cmdline": info.cmdline[:_CMDLINE_MAX],
        "cmdline_hidden": info.cmdline_hidden,
        "create_time": info.create_time,
    }


def _message(exc: NoxError) -> str:
    return exc.message[:1].upper() + exc.message[1:]


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/processes", title="Processes")
    async def processes_page(principal: Principal) -> None:
        may_signal = principal.role.allows(Role.OPERATOR)
        # The service decides what the listing holds; this only picks the words around it.
        sees_cmdline = services.processes.shows_cmdline(principal)
        # The open details: its pid, and the value labels that each refresh updates in place.
        state: dict[str, Any] = {"details_pid": None, "labels": None}
        lock = asyncio.Lock()  # timer ticks, sorting, paging and typing must not interleave

        async def refresh() -> None:
            async with lock:
                pagination = dict(table.pagination)
                rows_per_page = int(pagination.get("rowsPerPage") or 50)
                page_number = max(1, int(pagination.get("page") or 1))
                query = (search.value or "").strip()

                async def fetch(number: int) -> ProcessPage | None:
                    return await run.io_bound(
                        services.processes.list,
                        principal,
                        sort=pagination.get("sortBy") or "cpu",
                        q=query,
                        limit=rows_per_page,
                        offset=(number - 1) * rows_per_page,
                        descending=bool(pagination.get("descending", True)),
                    )

                try:
                    page = await fetch(page_number)
                    if page is not None and page.total and not page.items and page_number > 1:
                        page_number = (page.total - 1) // rows_per_page + 1  # the list shrank under us
                        page = await fetch(page_number)
                except NoxError as exc:
                    ui.notify(_message(exc), type="negative")
                    return
                if page is None or table.is_deleted:  # shutting down, or the tab closed while we listed
                    return
                table.rows = [row_of(info) for info in page.items]
                table.pagination = {**pagination, "page": page_number, "rowsNumber": page.total}
                count.text = (
                    f"{page.total} matching “{query}”" if query else f"{page.total} processes"
                ) + f" · refreshed {datetime.now(UTC).strftime('%H:%M:%S')} UTC"
                if details_dialog.value and state["details_pid"] is not None:
                    await show_details(state["details_pid"])

        async def on_request(event: GenericEventArguments) -> None:
            requested = event.args.get("pagination") or {}
            table.pagination = {
                **table.pagination,
                **{
                    k: requested[k] for k in ("sortBy", "descending", "page", "rowsPerPage") if k in requested
                },
            }
            await refresh()

        async def on_search() -> None:
            table.pagination = {**table.pagination, "page": 1}
            await refresh()

        async def on_row_click(event: GenericEventArguments) -> None:
            row = event.args[1] if isinstance(event.args, list) and len(event.args) > 1 else {}
            pid = row.get("pid")
            if isinstance(pid, int):
                async with lock:
                    await show_details(pid, opening=True)

        async def show_details(pid: int, *, opening: bool = False) -> None:
            state["details_pid"] = pid
            try:
                details: ProcessDetails | None = await run.io_bound(
                    services.processes.details, principal, pid
                )
            except NoxError:
                details = None
            if details_body.is_deleted:
                return
            labels: dict[str, ui.label] | None = state["labels"]
            if opening or details is None or labels is None:
                details_body.clear()
                with details_body:
                    state["labels"] = render_details(pid, details)
            else:  # live values, without rebuilding (a button under the pointer stays put)
                for name, value in detail_fields(details):
                    labels[name].text = value
            if opening:
                details_dialog.open()

        def detail_fields(details: ProcessDetails) -> list[tuple[str, str]]:
            info = details.info

            def optional(value: object) -> str:
                return DASH if value is None or value == "" else str(value)

            return [
                ("PID", str(info.pid)),
                ("Parent PID", optional(details.ppid)),
                ("User", optional(info.username)),
                ("Status", optional(info.status)),
                ("CPU %", _number(info.cpu_percent)),
                ("Memory %", _number(info.memory_percent, 2)),
                ("RSS", DASH if info.rss_bytes is None else format_bytes(info.rss_bytes)),
                ("Threads", optional(info.num_threads)),
                ("Children", optional(details.children)),
                ("Open files", optional(details.open_files)),
                ("Connections", optional(details.connections)),
                (
                    "Started",
                    DASH
                    if info.create_time is None
                    else datetime.fromtimestamp(info.create_time, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                ),
                ("Executable", optional(details.exe)),
                ("Working dir", optional(details.cwd)),
                (
                    "Command line",
                    f"{info.cmdline} · arguments are shown to operators and admins"
                    if info.cmdline_hidden
                    else info.cmdline or f"[{info.name}]",
                ),
            ]

        def render_details(pid: int, details: ProcessDetails | None) -> dict[str, ui.label] | None:
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("memory", size="sm").classes("nox-muted")
                name = details.info.name if details else ""
                ui.label(f"{name or 'Process'} · pid {pid}").classes("text-h6 ellipsis")
                ui.space()
                ui.button(icon="close", on_click=details_dialog.close).props(
                    "flat round dense aria-label=Close"
                )
            if details is None:
                ui.label(f"Process {pid} no longer exists.").classes("nox-muted").mark("process-gone")
                return None
            info = details.info
            labels: dict[str, ui.label] = {}
            *fields, (command_name, command) = detail_fields(details)
            with ui.grid(columns="auto 1fr").classes("w-full gap-x-4 gap-y-1 text-body2"):
                for name, value in fields:
                    ui.label(name).classes("nox-muted")
                    labels[name] = ui.label(value).classes("nox-break")
            ui.label(command_name).classes("nox-muted text-body2 q-mt-sm")
            labels[command_name] = ui.label(command).classes(
                "text-body2 nox-break font-mono q-pa-sm rounded-borders nox-code w-full"
            )
            if any(value is None for value in (details.open_files, details.connections, details.cwd)):
                ui.label(f"{DASH} the operating system does not let the panel read this.").classes(
                    "text-caption nox-muted"
                )
            if may_signal:
                with ui.row().classes("w-full justify-end gap-2 q-mt-sm"):
                    ui.button("Terminate", icon="stop", on_click=lambda: confirm_signal(info, "TERM")).props(
                        "outline color=orange-9"
                    ).mark("terminate")
                    ui.button("Kill", icon="dangerous", on_click=lambda: confirm_signal(info, "KILL")).props(
                        "unelevated color=negative"
                    ).mark("kill")
            return labels

        async def confirm_signal(info: ProcessInfo, signal: str) -> None:
            if await guard.allow(Role.OPERATOR) is None:
                return
            verb = "Terminate" if signal == "TERM" else "Kill"
            explain = (
                "Sends SIGTERM: the process may clean up and exit, or ignore it."
                if signal == "TERM"
                else "Sends SIGKILL: the process stops at once, without cleaning up. Unsaved work is lost."
            )
            with dialog_host, ui.dialog() as dialog, card().classes("q-pa-md gap-3 max-w-md"):
                ui.label(f"{verb} process {info.pid} ({info.name or '?'})?").classes("text-h6")
                ui.label(explain).classes("text-body2 nox-muted")
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
                    ui.button(verb, on_click=lambda: dialog.submit(True)).props(
                        f"unelevated color={'orange-9' if signal == 'TERM' else 'negative'}"
                    ).mark("confirm-signal")
            confirmed = await dialog
            dialog.delete()
            if not confirmed:
                return
            actor = await guard.allow(Role.OPERATOR)  # again: the session may have ended meanwhile
            if actor is None:
                return
            try:
                await run.io_bound(
                    services.processes.signal,
                    actor,
                    info.pid,
                    signal,
                    create_time=info.create_time,
                    ip=client_ip(),
                )
            except NoxError as exc:
                ui.notify(_message(exc), type="negative")
                return
            ui.notify(f"Sent {signal} to process {info.pid} ({info.name or '?'})", type="positive")
            details_dialog.close()
            await refresh()

        with frame(guard, principal, "Processes"):
            ui.add_css(_CSS)
            with ui.row().classes("w-full items-end gap-4"):
                with ui.column().classes("gap-0"):
                    ui.label("Processes").classes("text-h5")
                    count = ui.label("").classes("text-caption nox-muted").mark("process-count")
                ui.space()
                live = (
                    ui.switch("Live", value=True)
                    .props("dense")
                    .tooltip(f"Refresh every {REFRESH_SECONDS:g} s")
                )
                search = (
                    ui.input(
                        "Filter: name, user, command line or PID"
                        if sees_cmdline
                        else "Filter: name, user or PID",
                        on_change=on_search,
                    )
                    .props("outlined dense clearable debounce=300 autocomplete=off")
                    .classes("w-80 max-w-full")
                    .mark("process-search")
                )
            with card().classes("w-full q-pa-none"):
                table = (
                    ui.table(
                        columns=COLUMNS,
                        rows=[],
                        row_key="pid",
                        pagination={
                            "sortBy": "cpu",
                            "descending": True,
                            "page": 1,
                            "rowsPerPage": 50,
                            "rowsNumber": 0,
                        },
                    )
                    .props("flat dense binary-state-sort")
                    .classes("w-full nox-proc-table")
                    .mark("process-table")
                )
                table.props["rows-per-page-options"] = PAGE_SIZES
                table.add_slot("body-cell-cmdline", _CMDLINE_SLOT)
                table.on("request", on_request, ["pagination"])
                table.on("rowClick", on_row_click, [[], ["pid"], None])
            if not may_signal:
                ui.label(
                    "Viewers see processes; operators and admins can also terminate them."
                    if sees_cmdline
                    else "Viewers see processes and their executables; operators and admins also see "
                    "command lines (they may hold passwords) and can terminate processes."
                ).classes("text-caption nox-muted")

        dialog_host = ui.element("div")  # confirmation dialogs live here, not in the refreshed details
        with ui.dialog().props("position=right") as details_dialog:
            details_body = card().classes("q-pa-md gap-2 w-[28rem] max-w-full").mark("process-details")
        details_dialog.on_value_change(
            lambda e: None if e.value else state.update(details_pid=None, labels=None)
        )

        # Created inside the page, so it belongs to this client: it is deleted with the client when
        # the tab closes, and never lists processes for nobody.
        timer = ui.timer(REFRESH_SECONDS, refresh, immediate=False)
        live.on_value_change(lambda e: setattr(timer, "active", bool(e.value)))
        await refresh()
