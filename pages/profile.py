from __future__ import annotations

from nicegui import run, ui

from components.forms import error_banner, password_input
from components.frame import frame
from components.session import SessionGuard
from components.theme import card
from nox_ui.app import Services
from nox_ui.errors import NoxError
from nox_ui.roles import Principal, Role


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/profile", title="Profile")
    def profile(principal: Principal) -> None:
        user = services.users.get(principal.user_id)

        async def change_password() -> None:
            error.text = ""
            actor = guard.require(Role.VIEWER)
            if actor is None:
                return
            if (new.value or "") != (confirm.value or ""):
                error.text = "The two new passwords differ."
                return
            if not await run.io_bound(
                services.auth.verify_current_password, actor.user_id, current.value or ""
            ):
                error.text = "The current password is not right."
                return
            try:
                await run.io_bound(services.users.set_password, actor.username, new.value or "", actor=actor)
            except NoxError as exc:
                error.text = exc.message
                return
            ui.notify("Password changed. Sign in again with the new one.", type="positive")

        with frame(guard, principal, "Profile"):
            ui.label("Profile").classes("text-h5")
            with ui.row().classes("w-full gap-4 items-start"):
                with card().classes("q-pa-md min-w-[280px]"):
                    ui.label("Account").classes("text-subtitle1 text-weight-medium")
                    with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-body2"):
                        for name, value in (
                            ("Username", user.username),
                            ("Role", user.role),
                            ("Display name", user.display_name or "-"),
                            ("Email", user.email or "-"),
                            (
                                "Last sign-in",
                                user.last_login_at.strftime("%Y-%m-%d %H:%M UTC")
                                if user.last_login_at
                                else "-",
                            ),
                        ):
                            ui.label(name).classes("nox-muted")
                            ui.label(value)
                with card().classes("q-pa-md w-full max-w-md gap-2"):
                    ui.label("Change password").classes("text-subtitle1 text-weight-medium")
                    ui.label("Changing it signs you out everywhere, this browser included.").classes(
                        "text-caption nox-muted"
                    )
                    current = password_input("Current password").mark("current")
                    new = password_input("New password", autocomplete="new-password").mark("new")
                    confirm = password_input("Confirm new password", autocomplete="new-password").mark(
                        "confirm"
                    )
                    error = error_banner()
                    ui.button("Change password", on_click=change_password).mark("change-password").props(
                        "unelevated color=primary"
                    )
