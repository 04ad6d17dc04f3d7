"""Colours and the few global styles shared by every screen."""

from __future__ import annotations

from nicegui import ui

PRIMARY = "#2563eb"

# One slate palette for both modes, so header, drawer, page and cards belong together.
_CSS = """
body { background: #f1f5f9; }
.body--dark { background: #0b1220; }
.nox-header { background: #0f172a; }
.body--dark .nox-header { background: #020617; }
.nox-drawer { background: #f8fafc; }
.body--dark .nox-drawer { background: #0f172a; }
.body--dark .q-card { background: #111827; }
.nox-nav-active { background: rgba(37, 99, 235, .12); color: #2563eb; font-weight: 600; }
.body--dark .nox-nav-active { color: #93c5fd; }
.nox-muted { color: #475569; }
.body--dark .nox-muted { color: #94a3b8; }
.nox-conn { display: inline-block; width: 10px; height: 10px; border-radius: 50%; background: #f59e0b;
            box-shadow: 0 0 0 3px rgba(245, 158, 11, .25); }
.nox-conn[data-state="up"] { background: #22c55e; box-shadow: 0 0 0 3px rgba(34, 197, 94, .25); }
.nox-conn[data-state="down"] { background: #ef4444; box-shadow: 0 0 0 3px rgba(239, 68, 68, .25); }
.nox-card { border-radius: 10px; }
.leading-tight { line-height: 1.1; }
.nox-level-ok { color: inherit; }
.nox-value.nox-level-ok { color: #16a34a; }
.nox-level-warning { color: #d97706; }
.nox-level-critical { color: #dc2626; }
.nox-bar-track { height: 6px; border-radius: 3px; background: rgba(148, 163, 184, .25); overflow: hidden; width: 100%; }
.nox-bar-fill { height: 100%; width: 0; border-radius: 3px; background: currentColor; transition: width .3s; }
.nox-bar-fill.nox-level-ok { color: #2563eb; }
.nox-bar-fill.nox-level-warning { color: #f59e0b; }
.nox-bar-fill.nox-level-critical { color: #dc2626; }
.nox-spark-box { width: 120px; height: 28px; color: #2563eb; }
.body--dark .nox-spark-box { color: #60a5fa; }
.nox-spark { width: 120px; height: 28px; display: block; }
.nox-save-bar { background: #f1f5f9; border-top: 1px solid rgba(148, 163, 184, .35); z-index: 5; }
.body--dark .nox-save-bar { background: #0b1220; }
.nox-mono { font-variant-numeric: tabular-nums; }
.nox-value, .nox-metric-card .text-caption { font-variant-numeric: tabular-nums; }
"""


def apply_theme() -> None:
    ui.colors(primary=PRIMARY)
    ui.add_css(_CSS)


def card() -> ui.card:
    """The one card style of the panel: flat, bordered, rounded."""
    return ui.card().props("flat bordered").classes("nox-card")
