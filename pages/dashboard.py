from __future__ import annotations

import platform
import socket

from nicegui import ui

from components.frame import frame
from components.session import SessionGuard
from components.theme import card
from nox_ui.app import Services
from nox_ui.roles import Principal


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/", title="Dashboard")
    def dashboard(principal: Principal) -> None:
        with frame(guard, principal, "Dashboard"):
            ui.label(f"Welcome, {principal.label}").classes("text-h5")
            with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 gap-4 w-full"):
                with card().classes("q-pa-md"):
                    ui.label("This host").classes("text-subtitle1 text-weight-medium")
                    with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-body2"):
                        for name, value in (
                            ("Hostname", socket.gethostname()),
                            ("System", f"{platform.system()} {platform.release()}"),
                            ("Machine", platform.machine()),
                            ("Python", platform.python_version()),
                        ):
                            ui.label(name).classes("nox-muted")
                            ui.label(value).classes("break-all")
                with card().classes("q-pa-md"):
                    with ui.row().classes("items-center gap-2"):
                        ui.icon("insights", size="sm").classes("nox-muted")
                        ui.label("No metrics yet").classes("text-subtitle1 text-weight-medium")
                    ui.label(
                        "The live dashboard (CPU, memory, disks, network, processes) is not built yet. "
                        "This page shows nothing it cannot measure."
                    ).classes("text-body2 nox-muted")
