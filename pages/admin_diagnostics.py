"""Diagnostics (admin): the background jobs as the supervisor sees them (live), storage (database size,
free space), the cache, the search index and the versions of what the panel runs on.

Sections for services that are not there (an older build without a cache or search) are left out; every
file-system and cache read runs in a worker thread."""

from __future__ import annotations

import platform
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nicegui
from nicegui import run, ui

import nox_ui
from nox_ui.app import Services
from nox_ui.components.format import format_bytes
from nox_ui.components.frame import frame
from nox_ui.components.health_banner import DIAGNOSTICS_PATH
from nox_ui.components.session import SessionGuard
from nox_ui.components.signals import ui_event
from nox_ui.roles import Principal, Role
from nox_ui.supervisor import JobState

JOB_COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Job", "field": "name", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "since", "label": "Failing since (UTC)", "field": "since", "align": "left"},
    {"name": "restarts", "label": "Restarts", "field": "restarts", "align": "right"},
    {"name": "failures", "label": "Failures", "field": "failures", "align": "right"},
    {"name": "last_ok", "label": "Last success (UTC)", "field": "last_ok", "align": "left"},
    {"name": "last_error", "label": "Last error", "field": "last_error", "align": "left"},
]
CACHE_COLUMNS: list[dict[str, Any]] = [
    {"name": "namespace", "label": "Namespace", "field": "namespace", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "hits", "label": "Hits", "field": "hits", "align": "right"},
    {"name": "misses", "label": "Misses", "field": "misses", "align": "right"},
    {"name": "entries", "label": "Entries", "field": "entries", "align": "right"},
    {"name": "bytes", "label": "Size", "field": "bytes", "align": "right"},
]


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "-"


def job_row(state: JobState) -> dict[str, Any]:
    return {
        "name": state.name,
        "status": state.status,
        "since": _time(state.failing_since),
        "restarts": state.restarts,
        "failures": state.failures,
        "last_ok": _time(state.last_ok),
        "last_error": state.last_error or "",
    }


@dataclass
class Snapshot:
    """What the page shows beyond the jobs, read in a worker thread."""

    database: list[tuple[str, str]]
    cache: list[dict[str, Any]] | None
    search: list[tuple[str, str]] | None
    errors: list[str] = field(default_factory=list)


def versions() -> list[tuple[str, str]]:
    return [
        ("Nox UI", nox_ui.__version__),
        ("Python", platform.python_version()),
        ("NiceGUI", nicegui.__version__),
        ("SQLite", sqlite3.sqlite_version),
        ("Platform", platform.platform()),
    ]


def _sqlite_files(services: Services) -> list[Path]:
    database = services.db.engine.url.database if services.db.engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return []
    main = Path(database)
    return [path for path in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if path.exists()]


def read_snapshot(services: Services) -> Snapshot:
    errors: list[str] = []
    database: list[tuple[str, str]] = [("Engine", services.db.engine.dialect.name)]
    files = _sqlite_files(services)
    if files:
        database.append(("Database size", format_bytes(sum(path.stat().st_size for path in files))))
        database.append(("Database file", str(files[0])))
    try:
        usage = shutil.disk_usage(services.config.data_dir)
        database.append(
            ("Free space in the data folder", f"{format_bytes(usage.free)} of {format_bytes(usage.total)}")
        )
    except OSError as exc:
        errors.append(f"free space: {exc.strerror or exc}")
    cache_rows = None
    cache = getattr(services, "cache", None)
    if cache is not None and hasattr(cache, "stats"):
        try:
            cache_rows = [
                {
                    "namespace": stats.namespace,
                    "state": stats.state if not stats.reason else f"{stats.state}: {stats.reason}",
                    "hits": stats.hits,
                    "misses": stats.misses,
                    "entries": stats.entries,
                    "bytes": format_bytes(stats.bytes),
                }
                for stats in cache.stats()
            ]
        except Exception as exc:  # a broken cache must not take the diagnostics page with it
            errors.append(f"cache: {type(exc).__name__}: {exc}")
    search_rows = None
    search = getattr(services, "search", None)
    if search is not None and hasattr(search, "status"):
        try:
            status = search.status()
            progress = getattr(status, "progress", None)
            search_rows = [
                (
                    "State",
                    str(getattr(status, "state", "?"))
                    + (f" ({progress:.0%})" if progress is not None else ""),
                ),
                ("Documents", str(getattr(status, "documents", "?"))),
                ("Size", format_bytes(getattr(status, "size_bytes", 0) or 0)),
                ("Built", _time(getattr(status, "built_at", None))),
                ("Folder", str(getattr(status, "path", ""))),
                ("Last error", str(getattr(status, "last_error", "") or "-")),
            ]
        except Exception as exc:
            errors.append(f"search index: {type(exc).__name__}: {exc}")
    return Snapshot(database=database, cache=cache_rows, search=search_rows, errors=errors)


def _pairs(rows: list[tuple[str, str]], marker: str) -> None:
    with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1").mark(marker):
        for label, value in rows:
            ui.label(label).classes("nox-muted")
            ui.label(value).classes("break-all")


def register(services: Services, guard: SessionGuard) -> None:
    supervisor = services.supervisor

    @guard.page(DIAGNOSTICS_PATH, role=Role.ADMIN, title="Diagnostics")
    async def diagnostics_page(principal: Principal) -> None:
        with frame(guard, principal, "Diagnostics"):
            with ui.row().classes("items-center w-full gap-2"):
                ui.label("Diagnostics").classes("text-h5")
                ui.space()
                updated = ui.label("").classes("text-caption nox-muted").mark("diagnostics-updated")
                ui.button("Refresh", icon="refresh", on_click=lambda: refresh()).mark("diagnostics-refresh")
            with ui.card().classes("w-full nox-card"):
                ui.label("Background jobs").classes("text-h6")
                jobs = (
                    ui.table(
                        columns=JOB_COLUMNS, rows=[job_row(s) for s in supervisor.states()], row_key="name"
                    )
                    .props("flat bordered dense wrap-cells")
                    .classes("w-full")
                    .mark("diagnostics-jobs")
                )
            storage = ui.card().classes("w-full nox-card").mark("diagnostics-storage")
            cache = ui.card().classes("w-full nox-card").mark("diagnostics-cache")
            search = ui.card().classes("w-full nox-card").mark("diagnostics-search")
            for card in (cache, search):
                card.set_visibility(False)
            with ui.card().classes("w-full nox-card"):
                ui.label("Versions").classes("text-h6")
                _pairs(versions(), "diagnostics-versions")
            problems = ui.label("").classes("text-negative").mark("diagnostics-errors")

        def show_jobs(_state: JobState | None = None) -> None:
            if jobs.is_deleted:
                event.unsubscribe(show_jobs)
                return
            jobs.rows = [job_row(s) for s in supervisor.states()]

        async def refresh() -> None:
            if await guard.allow(Role.ADMIN) is None:
                return
            await load()

        async def load() -> None:
            show_jobs()
            snapshot: Snapshot | None = await run.io_bound(read_snapshot, services)
            if snapshot is None:  # the server is shutting down
                return
            storage.clear()
            with storage:
                ui.label("Storage").classes("text-h6")
                _pairs(snapshot.database, "diagnostics-database")
            if snapshot.cache is not None:
                cache.clear()
                with cache:
                    ui.label("Cache").classes("text-h6")
                    ui.table(columns=CACHE_COLUMNS, rows=snapshot.cache, row_key="namespace").props(
                        "flat bordered dense"
                    ).classes("w-full").mark("diagnostics-cache-table")
            cache.set_visibility(snapshot.cache is not None)
            if snapshot.search is not None:
                search.clear()
                with search:
                    ui.label("Search index").classes("text-h6")
                    _pairs(snapshot.search, "diagnostics-search-status")
            search.set_visibility(snapshot.search is not None)
            problems.text = "; ".join(snapshot.errors)
            updated.text = f"Updated {datetime.now(UTC).strftime('%H:%M:%S')} UTC"

        event = ui_event(supervisor.changed)
        event.subscribe(show_jobs)
        await load()
