from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.forms import auth_card, error_banner, on_submit, password_input, text_input
from nox_ui.components.session import SessionGuard
from nox_ui.errors import NoxError
from nox_ui.web import browser_id, safe_next


def register(services: Services, guard: SessionGuard) -> None:
    @ui.page("/login", title="Sign in · Nox UI")
    async def login_page(
        request: Request, next: str = "/", expired: str = "", created: str = ""
    ) -> RedirectResponse | None:
        target = safe_next(next)
        if await guard.principal_for(request) is not None:
            return RedirectResponse(target, status_code=303)
        ip = request.client.host if request.client else ""
        browser = browser_id(request)

        async def submit(values: list[str]) -> None:
            name, secret = values
            error.text = ""
            button.props("loading")
            try:
                user = await run.io_bound(services.auth.check_password, name, secret, ip)
            except NoxError as exc:
                error.text = exc.message
                password.value = ""
                return
            finally:
                button.props(remove="loading")
            if user is None:  # run.io_bound answers None while the server shuts down
                return
            try:
                ticket = services.auth.issue_ticket(user, browser)
            except NoxError as exc:
                error.text = exc.message
                return
            ui.navigate.to("/auth/complete?" + urlencode({"ticket": ticket, "next": target}))

        with auth_card("Sign in"):
            if created:
                ui.label("Administrator created. Sign in to continue.").classes("text-positive")
            if expired:
                ui.label("That sign-in took too long. Please try again.").classes("text-warning")
            username = text_input("Username", autocomplete="username", autofocus=True).mark("username")
            password = password_input("Password").mark("password")
            error = error_banner()
            button = ui.button("Sign in").mark("sign-in").props("unelevated color=primary")
            button.classes("w-full")
            for trigger, event in (
                (button, "click"),
                (username, "keydown.enter"),
                (password, "keydown.enter"),
            ):
                on_submit(trigger, event, submit, username, password)
        return None
