"""What a person sees when something unexpected breaks on a page or in a button's action.

- A page that raises: a friendly error page (status 500) with the incident id, the same id that the log
  line with the traceback carries (`nox_ui.incidents`). Admins also read the exception's type and
  message; nobody reads the traceback outside the log. A `NoxError` escaping a page (an expected
  failure) shows its own message, without an incident.
- An action that raises (a click, a timer): a notification with the incident id. An action run through
  `SessionGuard.act` can be run again, so its notification carries a Retry button (`action_failed`).

`install` hooks this into NiceGUI once per mount: its page-exception handler, its app-level exception
handlers (replacing NiceGUI's own logging of the exception, so each traceback is logged once, with its
id) and FastAPI's handler for `Exception` (whose NiceGUI version draws the exception text on a page).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from loguru import logger
from nicegui import Client, app, ui
from nicegui.logging import log as nicegui_log
from nicegui.page import page as nicegui_page

from nox_ui import incidents
from nox_ui.errors import NoxError
from nox_ui.roles import Principal

INSTALLED = "_nox_failures"  # marks our handlers, so a second mount replaces them instead of adding more
SHOWN = "_nox_shown"  # marks an exception already shown to its person (NiceGUI hands it on to others)
NOTICE_SECONDS = 30.0
Retry = Callable[[], Awaitable[Any] | None]


def install(principal_of: Callable[[Client], Principal | None]) -> None:
    """Route NiceGUI's page and action exceptions here. `principal_of(client)` is the page guard's
    signed-in principal of an open page (admins see an exception's type and message)."""

    def page_failed(error: Exception) -> None:
        error_page(error)

    def action_raised(error: Exception) -> None:
        if getattr(error, SHOWN, False):
            return  # the error page or an action's notification
        try:
            client = ui.context.client
        except RuntimeError:  # a background task of no page: the log line is all there is
            incidents.record(error, "a background task")
            return
        action_failed(error, principal=principal_of(client))

    async def unexpected_response(request: Request, error: Exception) -> Response:
        # NiceGUI calls this right after the page handler for the same exception (the page is drawn).
        if getattr(error, SHOWN, False):
            return Response(status_code=500)
        incident = incidents.record(error, f"{request.method} {request.url.path}")
        if not request.scope.get("nicegui_page_path"):
            return JSONResponse({"detail": incidents.public_message(incident), "incident": incident.id}, 500)
        with Client(nicegui_page(""), request=request) as client:
            _draw(incident.id, "Something went wrong on this page", None)
        return client.build_response(request, 500)

    for handler in (page_failed, action_raised, unexpected_response):
        setattr(handler, INSTALLED, True)
    app.on_page_exception(page_failed)
    handlers: list[Any] = app._exception_handlers  # no public way to replace NiceGUI's handlers
    handlers[:] = [h for h in handlers if not getattr(h, INSTALLED, False) and h != nicegui_log.exception]
    app.on_exception(action_raised)
    app.exception_handlers[Exception] = unexpected_response
    app.middleware_stack = None  # Starlette reads its handlers when it builds the stack


def error_page(error: Exception) -> None:
    """The page NiceGUI shows instead of one that raised (drawn into its fresh error client)."""
    _shown(error)
    client = ui.context.client
    path = client.request.url.path if client.request is not None else client.page.path
    ui.page_title("Something went wrong · Nox UI")
    if isinstance(error, NoxError):
        logger.info("page {} stopped: {}", path, error.message)
        _draw(None, error.message, None)
        return
    incident = incidents.record(error, f"page {path}")
    _draw(incident.id, "Something went wrong on this page", _details(error, incident))


def action_failed(
    error: Exception, *, principal: Principal | None = None, retry: Retry | None = None
) -> None:
    """Tell the person in this page that their action failed: the incident id, for admins the
    exception's type and message, and a Retry button when `retry` can run the action again."""
    _shown(error)
    if isinstance(error, NoxError):
        ui.notify(error.message, type="negative", multi_line=True)
        return
    client = ui.context.client
    path = client.request.url.path if client.request is not None else client.page.path
    incident = incidents.record(error, f"action on {path}")
    message = f"That did not work: something went wrong on the server (incident {incident.id})."
    details = _details(error, incident, principal)
    if details:
        message += f" {details}"
    if retry is None:
        ui.notify(message, type="negative", multi_line=True, timeout=NOTICE_SECONDS * 1000)
        return
    notice = ui.notification(
        message, type="negative", multi_line=True, timeout=NOTICE_SECONDS, close_button="Dismiss"
    ).mark("action-failed")
    notice.props["options"]["actions"] = [
        {"label": "Retry", "color": "white", ":handler": f'() => getElement({notice.id}).$emit("retry")'}
    ]

    async def run_again() -> None:
        notice.dismiss()
        result = retry()
        if result is not None:
            await result

    notice.on("retry", run_again)


def _shown(error: Exception) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, SHOWN, True)


def _details(
    error: Exception, incident: incidents.Incident, principal: Principal | None = None
) -> str | None:
    return incident.summary if incidents.shows_details_to(error, principal) else None


def _draw(incident_id: str | None, title: str, details: str | None) -> None:
    with ui.column().classes("items-center w-full q-pa-xl gap-3").mark("error-page"):
        ui.icon("error_outline", size="3rem").classes("text-negative")
        ui.label(title).classes("text-h5")
        if incident_id is not None:
            ui.label(
                "The server logged what happened. If it happens again, tell your administrator this incident id:"
            ).classes("nox-muted")
            ui.label(incident_id).classes("text-h6 text-mono").mark("incident-id")
        if details:
            ui.label(details).classes("text-caption nox-muted").mark("incident-details")
        with ui.row().classes("gap-2"):
            ui.button("Try again", icon="refresh", on_click=lambda: ui.navigate.reload()).props("outline")
            ui.link("Back to the dashboard", "/")
