from __future__ import annotations

from fastapi.responses import PlainTextResponse
from nicegui import run, ui

from components.forms import error_banner, password_input, text_input
from components.theme import apply_theme
from nox_ui.app import Services
from nox_ui.errors import Forbidden, NotFound, NoxError
from nox_ui.passwords import MIN_LENGTH


def register(services: Services) -> None:
    @ui.page("/setup", title="First-run setup · Nox UI")
    def setup_page(token: str = "") -> PlainTextResponse | None:
        try:
            services.setup.check(token)
        except NotFound:
            return PlainTextResponse("Not Found", status_code=404)
        except Forbidden as exc:
            return PlainTextResponse(f"Forbidden: {exc.message}", status_code=403)
        apply_theme()

        async def create() -> None:
            error.text = ""
            if (password.value or "") != (confirm.value or ""):
                error.text = "The two passwords differ."
                return
            try:
                user = await run.io_bound(
                    services.setup.create_admin, token, username.value or "", password.value or ""
                )
            except NoxError as exc:
                error.text = exc.message
                return
            ui.notify(f"Administrator {user.username!r} created. Sign in to continue.", type="positive")
            ui.navigate.to("/login")

        with ui.column().classes("absolute-center items-stretch w-full max-w-md q-pa-md"):
            with ui.card().classes("nox-card w-full q-pa-lg gap-3"):
                ui.label("Welcome to Nox UI").classes("text-h6")
                ui.label(
                    "Create the first administrator. This page works once: after it, sign in at /login."
                ).classes("text-body2 text-grey-7")
                username = text_input("Username", autocomplete="username", autofocus=True).mark("username")
                password = password_input("Password", autocomplete="new-password").mark("password")
                confirm = password_input("Confirm password", autocomplete="new-password").mark("confirm")
                ui.label(f"At least {MIN_LENGTH} characters.").classes("text-caption text-grey-7")
                error = error_banner()
                ui.button("Create administrator", on_click=create).mark("create").props(
                    "unelevated color=primary"
                ).classes("w-full")
                confirm.on("keydown.enter", create)
        return None
