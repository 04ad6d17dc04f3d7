from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from nicegui import run, ui

from components.forms import error_banner, password_input, text_input
from components.session import SessionGuard
from components.theme import apply_theme
from nox_ui.app import Services
from nox_ui.errors import NoxError
from nox_ui.web import safe_next


def register(services: Services, guard: SessionGuard) -> None:
    @ui.page("/login", title="Sign in · Nox UI")
    def login_page(request: Request, next: str = "/", expired: str = "") -> None:
        target = safe_next(next)
        if guard.principal_for(request) is not None:
            ui.navigate.to(target)
            return
        apply_theme()
        ip = request.client.host if request.client else ""

        async def submit() -> None:
            error.text = ""
            button.props("loading")
            try:
                user = await run.io_bound(
                    services.auth.check_password, username.value or "", password.value or "", ip
                )
            except NoxError as exc:
                error.text = exc.message
                password.value = ""
                return
            finally:
                button.props(remove="loading")
            ticket = services.auth.issue_ticket(user)
            ui.navigate.to("/auth/complete?" + urlencode({"ticket": ticket, "next": target}))

        with ui.column().classes("absolute-center items-stretch w-full max-w-sm q-pa-md"):
            with ui.row().classes("items-center gap-2 justify-center q-mb-md"):
                ui.icon("dns", size="md").classes("text-primary")
                ui.label("Nox UI").classes("text-h5 text-weight-bold")
            with ui.card().classes("nox-card w-full q-pa-lg gap-3"):
                ui.label("Sign in").classes("text-h6")
                if expired:
                    ui.label("That sign-in took too long. Please try again.").classes("text-warning")
                username = text_input("Username", autocomplete="username", autofocus=True).mark("username")
                password = password_input("Password").mark("password")
                error = error_banner()
                button = (
                    ui.button("Sign in", on_click=submit)
                    .mark("sign-in")
                    .props("unelevated color=primary")
                    .classes("w-full")
                )
                username.on("keydown.enter", submit)
                password.on("keydown.enter", submit)
