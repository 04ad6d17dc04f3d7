from __future__ import annotations

from nicegui import ui

from components.frame import frame
from components.session import SessionGuard
from nox_ui.app import Services
from nox_ui.roles import Principal, Role


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/admin/users", role=Role.ADMIN, title="Users")
    def users_page(principal: Principal) -> None:
        with frame(guard, principal, "Users"):
            ui.label("Users").classes("text-h5")
            ui.markdown(
                "Accounts are created on the command line with `nox-ui users create`; "
                "editing them here comes with user management."
            ).classes("text-body2 nox-muted")
            rows = [
                {
                    "username": user.username,
                    "role": user.role,
                    "status": "disabled" if user.disabled else "active",
                    "last_login": user.last_login_at.strftime("%Y-%m-%d %H:%M")
                    if user.last_login_at
                    else "never",
                }
                for user in services.users.list()
            ]
            columns = [
                {
                    "name": "username",
                    "label": "Username",
                    "field": "username",
                    "sortable": True,
                    "align": "left",
                },
                {"name": "role", "label": "Role", "field": "role", "sortable": True, "align": "left"},
                {"name": "status", "label": "Status", "field": "status", "sortable": True, "align": "left"},
                {"name": "last_login", "label": "Last sign-in (UTC)", "field": "last_login", "align": "left"},
            ]
            ui.table(columns=columns, rows=rows, row_key="username").props("flat bordered").classes("w-full")
