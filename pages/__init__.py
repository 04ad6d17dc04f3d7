"""The built-in screens. `register_pages` is the `nox_ui.ui` entry point that `nox_ui.web` loads."""

from __future__ import annotations

from nicegui import ui

from nox_ui.app import Services
from nox_ui.components import failures
from nox_ui.components.frame import forbidden_page
from nox_ui.components.session import SessionGuard
from nox_ui.pages import (
    admin_audit,
    admin_diagnostics,
    admin_plugins,
    admin_settings,
    admin_users,
    alerts,
    dashboard,
    history,
    login,
    plugin_pages,
    processes,
    profile,
    search,
    setup,
)


def register_pages(services: Services) -> SessionGuard:
    ui.button.default_props("no-caps")
    guard = SessionGuard(services, forbidden_page=forbidden_page)
    failures.install(guard.principal_of)  # friendly error pages and notifications, with incident ids
    login.register(services, guard)
    setup.register(services)
    dashboard.register(services, guard)
    history.register(services, guard)
    processes.register(services, guard)
    alerts.register(services, guard)
    profile.register(services, guard)
    admin_users.register(services, guard)
    admin_settings.register(services, guard)
    admin_audit.register(services, guard)
    admin_diagnostics.register(services, guard)
    admin_plugins.register(services, guard)
    search.register(services, guard)
    plugin_pages.register(services, guard)
    return guard
