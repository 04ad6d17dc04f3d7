"""The panel's own menu, contributed through the same `nav_items` hook as a plugin's (a default plugin,
as Datasette registers its built-in features). It is always loaded and cannot be disabled. The host
marks `nav_items` as a hookimpl when it first needs pluggy (which a panel with no plugin enabled never
imports)."""

from __future__ import annotations

from nox_ui.plugins.spec import NavItem
from nox_ui.roles import Role

NAME = "nox_ui.builtin"


def nav_items() -> list[NavItem]:
    return [
        NavItem("Dashboard", "/", icon="dashboard", order=10),
        NavItem("History", "/history", icon="timeline", order=20),
        NavItem("Processes", "/processes", icon="memory", order=30),
        NavItem("Alerts", "/alerts", icon="notifications", order=40),
        NavItem("Users", "/admin/users", icon="group", role=Role.ADMIN, order=50),
        NavItem("Settings", "/admin/settings", icon="tune", role=Role.ADMIN, order=60),
        NavItem("Plugins", "/admin/plugins", icon="extension", role=Role.ADMIN, order=65),
        NavItem("Audit log", "/admin/audit", icon="fact_check", role=Role.ADMIN, order=70),
        NavItem("Diagnostics", "/admin/diagnostics", icon="monitor_heart", role=Role.ADMIN, order=75),
    ]
