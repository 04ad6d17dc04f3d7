"""Users (admin): a searchable, sortable table; create, change role, disable/enable, reset password,
end sessions, delete. Thin on purpose: every rule (guards, validation, ending sessions, audit) lives in
`UserService`; each action re-checks the admin role with `await guard.allow` first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import events, run, ui

from nox_ui.app import Services
from nox_ui.components.forms import ConfirmDialog, error_banner, password_input, text_input
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.tables import row_actions_slot
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.models import User
from nox_ui.passwords import MIN_LENGTH
from nox_ui.roles import Principal, Role

ROLE_OPTIONS = {role.value: role.value.capitalize() for role in Role}

COLUMNS: list[dict[str, Any]] = [
    {"name": "username", "label": "Username", "field": "username", "sortable": True, "align": "left"},
    {
        "name": "display_name",
        "label": "Display name",
        "field": "display_name",
        "sortable": True,
        "align": "left",
    },
    {"name": "email", "label": "Email", "field": "email", "sortable": True, "align": "left"},
    {"name": "role", "label": "Role", "field": "role", "sortable": True, "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "sortable": True, "align": "left"},
    {
        "name": "last_login",
        "label": "Last sign-in (UTC)",
        "field": "last_login",
        "sortable": True,
        "align": "left",
    },
    {"name": "sessions", "label": "Sessions", "field": "sessions", "sortable": True, "align": "right"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]

# Each button emits `row-action` with the row's id; the page's handler does the rest.
_ACTIONS_SLOT = row_actions_slot(
    [
        ("role", "manage_accounts", "Change role"),
        ("toggle", ":props.row.disabled ? 'check_circle' : 'block'", "Disable or enable"),
        ("password", "key", "Reset password"),
        ("sessions", "logout", "End sessions"),
        ("delete", "delete", "Delete"),
    ]
)
_STATUS_SLOT = (
    '<q-td key="status" :props="props">'
    "<q-badge :color=\"props.row.disabled ? 'grey' : 'positive'\" :label=\"props.row.status\" />"
    "</q-td>"
)


def row_of(user: User, sessions: int) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "disabled": user.disabled,
        "status": "disabled" if user.disabled else "active",
        "last_login": user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never",
        "sessions": sessions,
    }


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/admin/users", role=Role.ADMIN, title="Users")
    async def users_page(principal: Principal, user: int | None = None) -> None:
        # `?user=<id>` (a search hit's link) opens the table filtered to that account.
        ip = client_ip()

        def rows() -> list[dict[str, Any]]:
            counts = services.users.active_session_counts()
            return [row_of(user, counts.get(user.id or 0, 0)) for user in services.users.list()]

        async def refresh() -> None:
            table.rows = await run.io_bound(rows) or []

        def row(user_id: int) -> dict[str, Any] | None:
            return next((r for r in table.rows if r["id"] == user_id), None)

        async def act(work: Callable[[Principal], Any], success: str) -> Any:
            return await guard.act(Role.ADMIN, work, success, then=refresh)

        # -- the confirmation dialog, shared by every destructive action ---------------------------
        ask = ConfirmDialog("confirm").ask

        # -- new user ---------------------------------------------------------------------------------
        with ui.dialog() as create_dialog, card().classes("q-pa-md gap-2 w-full max-w-md"):
            ui.label("New user").classes("text-h6")
            new_username = text_input("Username", autofocus=True).mark("new-username")
            new_display_name = text_input("Display name (optional)").mark("new-display-name")
            new_email = text_input("Email (optional)", autocomplete="off").mark("new-email")
            new_role = (
                ui.select(ROLE_OPTIONS, value=Role.VIEWER.value, label="Role")
                .props("outlined")
                .classes("w-full")
                .mark("new-role")
            )
            new_password = password_input("Initial password", autocomplete="new-password").mark(
                "new-password"
            )
            ui.label(f"At least {MIN_LENGTH} characters; common passwords are refused.").classes(
                "text-caption nox-muted"
            )
            create_error = error_banner().mark("create-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=create_dialog.close).props("flat")

                async def create() -> None:
                    create_error.text = ""
                    actor = await guard.allow(Role.ADMIN)
                    if actor is None:
                        return
                    username = (new_username.value or "").strip()
                    try:
                        await run.io_bound(
                            services.users.create,
                            actor,
                            username,
                            new_password.value or "",
                            new_role.value or "",
                            display_name=new_display_name.value or "",
                            email=new_email.value or "",
                            ip=client_ip(),
                        )
                    except NoxError as exc:
                        create_error.text = exc.message
                        return
                    create_dialog.close()
                    ui.notify(f"User {username} created.", type="positive")
                    await refresh()

                ui.button("Create", on_click=create).props("unelevated color=primary").mark("create-user")

        def open_create() -> None:
            for field in (new_username, new_display_name, new_email, new_password):
                field.value = ""
            new_role.value = Role.VIEWER.value
            create_error.text = ""
            create_dialog.open()

        # -- change role ------------------------------------------------------------------------------
        role_target: dict[str, Any] = {}
        with ui.dialog() as role_dialog, card().classes("q-pa-md gap-2 min-w-[320px]"):
            role_title = ui.label("").classes("text-h6")
            ui.label("Changing the role signs this user out everywhere and revokes their tokens.").classes(
                "text-body2 nox-muted"
            )
            role_select = (
                ui.select(ROLE_OPTIONS, label="Role").props("outlined").classes("w-full").mark("role")
            )
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=role_dialog.close).props("flat")

                async def save_role() -> None:
                    user_id, role = role_target["id"], role_select.value or ""
                    if await act(
                        lambda actor: services.users.update(actor, user_id, role=role, ip=ip),
                        f"{role_target['username']} is now {role}.",
                    ):
                        role_dialog.close()

                ui.button("Change role", on_click=save_role).props("unelevated color=primary").mark(
                    "save-role"
                )

        # -- reset password ---------------------------------------------------------------------------
        password_target: dict[str, Any] = {}
        with ui.dialog() as password_dialog, card().classes("q-pa-md gap-2 min-w-[320px]"):
            password_title = ui.label("").classes("text-h6")
            ui.label("The user is signed out everywhere and their tokens are revoked.").classes(
                "text-body2 nox-muted"
            )
            reset_password = password_input("New password", autocomplete="new-password").mark(
                "reset-password"
            )
            reset_error = error_banner().mark("reset-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=password_dialog.close).props("flat")

                async def save_password() -> None:
                    reset_error.text = ""
                    actor = await guard.allow(Role.ADMIN)
                    if actor is None:
                        return
                    user_id, password = password_target["id"], reset_password.value or ""
                    try:
                        await run.io_bound(
                            lambda: services.users.update(actor, user_id, password=password, ip=ip)
                        )
                    except NoxError as exc:
                        reset_error.text = exc.message
                        return
                    password_dialog.close()
                    ui.notify(f"Password of {password_target['username']} reset.", type="positive")
                    await refresh()

                ui.button("Reset password", on_click=save_password).props("unelevated color=primary").mark(
                    "save-password"
                )

        # -- row actions ------------------------------------------------------------------------------

        async def on_row_action(e: events.GenericEventArguments) -> None:
            args = e.args if isinstance(e.args, dict) else {}
            action = args.get("action")
            target = row(int(args.get("id") or 0))
            if target is None or await guard.allow(Role.ADMIN) is None:
                return
            user_id, name = target["id"], target["username"]
            if action == "role":
                role_target.update(target)
                role_title.text = f"Change the role of {name}"
                role_select.value = target["role"]
                role_dialog.open()
            elif action == "password":
                password_target.update(target)
                password_title.text = f"Reset the password of {name}"
                reset_password.value = ""
                reset_error.text = ""
                password_dialog.open()
            elif action == "toggle" and target["disabled"]:
                await act(
                    lambda actor: services.users.update(actor, user_id, disabled=False, ip=ip),
                    f"{name} enabled.",
                )
            elif action == "toggle":
                if user_id == principal.user_id:
                    ui.notify("you cannot disable your own account", type="negative")
                    return
                ask(
                    f"Disable {name}?",
                    "They are signed out everywhere, their tokens are revoked and they cannot sign in.",
                    "Disable",
                    lambda: act(
                        lambda actor: services.users.update(actor, user_id, disabled=True, ip=ip),
                        f"{name} disabled.",
                    ),
                )
            elif action == "sessions":
                ask(
                    f"End the sessions of {name}?",
                    "Every browser session of this user ends and their API tokens are revoked.",
                    "End sessions",
                    lambda: act(
                        lambda actor: services.users.end_sessions(actor, user_id, ip=ip), "Sessions ended."
                    ),
                )
            elif action == "delete":
                if user_id == principal.user_id:
                    ui.notify("you cannot delete your own account", type="negative")
                    return
                ask(
                    f"Delete {name}?",
                    "The account, its sessions and its tokens are removed. This cannot be undone.",
                    "Delete",
                    lambda: act(
                        lambda actor: services.users.delete(actor, user_id, ip=ip), f"{name} deleted."
                    ),
                )

        # -- the page ---------------------------------------------------------------------------------
        first_rows = await run.io_bound(rows)
        with frame(guard, principal, "Users"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Users").classes("text-h5")
                ui.space()
                search = (
                    ui.input(placeholder="Search users")
                    .props("outlined dense clearable")
                    .classes("min-w-[240px]")
                    .mark("search")
                )
                with search.add_slot("prepend"):
                    ui.icon("search")
                ui.button("New user", icon="person_add", on_click=open_create).props(
                    "unelevated color=primary"
                ).mark("new-user")
            with card().classes("w-full q-pa-none"):
                table = (
                    ui.table(columns=COLUMNS, rows=first_rows or [], row_key="id", pagination=25)
                    .props("flat")
                    .classes("w-full")
                    .mark("users-table")
                )
                table.add_slot("body-cell-status", _STATUS_SLOT)
                table.add_slot("body-cell-actions", _ACTIONS_SLOT)
                table.on("row-action", on_row_action)
                search.bind_value_to(table, "filter")
            if user is not None:
                wanted = next((r for r in first_rows or [] if r["id"] == user), None)
                if wanted is None:
                    ui.notify(f"No user with id {user}: it may have been deleted.", type="warning")
                else:
                    search.value = wanted["username"]
            ui.label(
                "Changing a role, disabling or resetting a password signs that user out everywhere. "
                "The last enabled admin cannot be demoted, disabled or deleted."
            ).classes("text-caption nox-muted")
