from __future__ import annotations

from fastapi.responses import PlainTextResponse
from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.forms import auth_card, error_banner, on_submit, password_input, text_input
from nox_ui.errors import Forbidden, NotFound, NoxError
from nox_ui.passwords import MIN_LENGTH


def register(services: Services) -> None:
    @ui.page("/setup", title="First-run setup · Nox UI")
    async def setup_page(token: str = "") -> PlainTextResponse | None:
        try:
            await run.io_bound(services.setup.check, token)
        except NotFound:
            return PlainTextResponse("Not Found", status_code=404)
        except Forbidden as exc:
            return PlainTextResponse(f"Forbidden: {exc.message}", status_code=403)

        async def create(values: list[str]) -> None:
            name, secret, again = values
            error.text = ""
            if secret != again:
                error.text = "The two passwords differ."
                return
            try:
                await run.io_bound(services.setup.create_admin, token, name, secret)
            except NoxError as exc:
                error.text = exc.message
                return
            ui.navigate.to("/login?created=1")

        with auth_card("Create the first administrator"):
            ui.label("This page works once; afterwards everyone signs in at /login.").classes(
                "text-body2 nox-muted"
            )
            username = text_input("Username", autocomplete="username", autofocus=True).mark("username")
            password = password_input("Password", autocomplete="new-password").mark("password")
            password.props(f"hint='At least {MIN_LENGTH} characters'")
            confirm = password_input("Confirm password", autocomplete="new-password").mark("confirm")
            error = error_banner()
            create_button = ui.button("Create administrator").mark("create").props("unelevated color=primary")
            create_button.classes("w-full")
            for trigger, event in ((create_button, "click"), (confirm, "keydown.enter")):
                on_submit(trigger, event, create, username, password, confirm)
        return None
