"""The page guard: every screen is registered through `SessionGuard.page`, which resolves the session
cookie on the server (in a worker thread), redirects anonymous visitors to /login?next=..., and
answers 403 for a role that is too low (`roles.check`, audited). UI actions re-check with
`await guard.allow(role)` (or `guard.act`), so a stale page cannot act after sign-out."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from loguru import logger
from nicegui import Client, app, core, run, ui

from nox_ui import incidents
from nox_ui.app import Services
from nox_ui.components import failures
from nox_ui.errors import Forbidden, NoxError
from nox_ui.roles import Principal, Role, Target, check, refusal
from nox_ui.services.auth import SESSION_COOKIE
from nox_ui.web import login_redirect

PageBuilder = Callable[..., Any]
# Draws the 403 page: (guard, principal, message). The frame provides it (frame.forbidden_page); the
# guard itself draws no chrome, so it does not import the frame that imports it.
ForbiddenPage = Callable[["SessionGuard", Principal, str], None]
SIGN_OUT_FORM = "nox-sign-out"


class SessionGuard:
    def __init__(self, services: Services, *, forbidden_page: ForbiddenPage | None = None) -> None:
        self.services = services
        self.forbidden_page = forbidden_page or _plain_forbidden_page
        self._principals: weakref.WeakKeyDictionary[Client, Principal] = weakref.WeakKeyDictionary()
        services.users.on_sessions_ended(self._close_pages_of)

    async def principal_for(self, request: Request) -> Principal | None:
        """The signed-in principal of this request's session cookie, or None (signed out, expired or
        disabled). The session is read (and touched) in a worker thread, never on the event loop."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        principal: Principal | None = await run.io_bound(self.services.auth.resolve_session, cookie)
        return principal

    def page(
        self, path: str, *, role: Role = Role.VIEWER, title: str = "Nox UI"
    ) -> Callable[[PageBuilder], Any]:
        """Register `builder(principal, **params)` as a protected page."""

        def decorator(builder: PageBuilder) -> Any:
            async def guarded(request: Request, **params: Any) -> Any:
                principal = await self.principal_for(request)
                if principal is None:
                    return login_redirect(
                        str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
                    )
                client = ui.context.client
                self._principals[client] = principal
                try:
                    await self._check(principal, role, request, details=None)
                except Forbidden as exc:
                    logger.info("403: {} ({}) opened {}", principal.username, principal.role.value, path)
                    client.status_code = 403
                    self.forbidden_page(self, principal, exc.message)
                    return None
                try:
                    result = builder(principal, **params)
                    if hasattr(result, "__await__"):
                        await result
                except Exception as exc:
                    incidents.seen_by(exc, principal)  # the error page shows an admin what failed
                    raise
                return None

            _copy_signature(guarded, builder)
            return ui.page(path, title=f"{title} · Nox UI")(guarded)

        return decorator

    async def check_page(self, principal: Principal, role: Role) -> None:
        """For a page whose role is known only once it runs (a plugin's): `Forbidden` (audited) when the
        principal's role is too low."""
        await self._check(principal, role, ui.context.client.request, details=None)

    async def _check(
        self, principal: Principal, role: Role, request: Request | None, details: dict[str, Any] | None
    ) -> Principal:
        """`roles.check` for a page or a UI action (a refusal is audited in a worker thread)."""
        if refusal(principal, role) is None:
            return principal
        target = Target("page", str(request.url.path) if request is not None else "")
        checked = await run.io_bound(
            check, principal, role, target, audit=self.services.audit, ip=_ip(request), details=details
        )
        if checked is None:  # the server is shutting down: nothing ran, so nothing is allowed
            raise Forbidden("the server is shutting down")
        return checked

    def principal_of(self, client: Client) -> Principal | None:
        """The principal an open page was served to (None for a page outside the guard)."""
        return self._principals.get(client)

    async def current(self) -> Principal | None:
        """The principal of the page this UI action runs in, re-validated against the database now
        (in a worker thread)."""
        client = ui.context.client
        request = client.request
        if request is None:
            return None
        principal = await self.principal_for(request)
        if principal is None:
            self._principals.pop(client, None)
        return principal

    async def allow(self, role: Role) -> Principal | None:
        """Check the role for a UI action: the actor, or None after telling the user (a stale page is
        sent to sign-in; a role too low is refused and audited)."""
        client = ui.context.client
        principal = await self.current()
        if principal is None:
            ui.notify("Your session has ended. Please sign in again.", type="warning")
            ui.navigate.to("/login")
            return None
        try:
            return await self._check(principal, role, client.request, details={"ui_action": True})
        except NoxError as exc:
            ui.notify(exc.message, type="negative")
            return None

    async def act(
        self,
        role: Role,
        work: Callable[[Principal], Any],
        success: str,
        *,
        then: Callable[[], Awaitable[Any] | None] | None = None,
    ) -> Any:
        """A UI action: re-check `role`, run `work(actor)` off the event loop, tell the user how it
        went, then call `then` (a refresh). Returns what `work` returned (True for None), or None when
        refused or failed, so `if await guard.act(...)` reads as "if it worked"."""
        actor = await self.allow(role)
        if actor is None:
            return None
        try:
            result = await run.io_bound(work, actor)
        except NoxError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return None
        except Exception as exc:  # unexpected: an incident, and a Retry that runs the same action again
            failures.action_failed(
                exc, principal=actor, retry=lambda: self.act(role, work, success, then=then)
            )
            return None
        if success:
            ui.notify(success, type="positive")
        if then is not None:
            refreshed = then()
            if refreshed is not None:
                await refreshed
        return True if result is None else result

    def sign_out_token(self) -> str:
        """The CSRF token of this page's sign-out form (bound to its session)."""
        request = ui.context.client.request
        cookie = request.cookies.get(SESSION_COOKIE, "") if request is not None else ""
        return self.services.auth.sign_out_token(cookie) if cookie else ""

    def sign_out(self) -> None:
        """Submit the frame's sign-out form: POST /logout ends the session and drops the cookie."""
        self._principals.pop(ui.context.client, None)
        ui.run_javascript(f"document.getElementById('{SIGN_OUT_FORM}').submit()")

    def _close_pages_of(self, user_ids: set[int]) -> None:
        """Some sessions of these users just ended: send each open page whose session is gone to the
        sign-in screen. A page whose session survives (the browser that changed its own password or ended
        its other sessions) stays open.

        Services may run in a worker thread (run.io_bound); UI work must happen on the event loop."""
        loop = core.loop
        if loop is None or not loop.is_running():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._navigate_to_login(user_ids)
        else:
            loop.call_soon_threadsafe(self._navigate_to_login, user_ids)

    def _navigate_to_login(self, user_ids: set[int]) -> None:
        pages = [
            (client, principal)
            for client, principal in list(self._principals.items())
            if principal.user_id in user_ids and not client.is_deleted
        ]
        if not pages:
            return
        # One indexed read for all of them: which of these pages' sessions still exist.
        live = self.services.auth.live_session_ids(
            {principal.credential_id for _, principal in pages if principal.credential_id is not None}
        )
        for client, principal in pages:
            if principal.credential_id in live:
                continue
            with client:
                ui.navigate.to("/login")
            self._principals.pop(client, None)


def _plain_forbidden_page(_guard: SessionGuard, _principal: Principal, message: str) -> None:
    with ui.column().classes("items-center w-full q-pa-xl gap-2"):
        ui.label("403 · Access denied").classes("text-h5")
        ui.label(message)
        ui.link("Back to the dashboard", "/")


def _ip(request: Request | None) -> str:
    return request.client.host if request is not None and request.client else ""


def client_ip() -> str:
    """The address of the browser behind the current page (for the audit log)."""
    return _ip(ui.context.client.request)


def _copy_signature(target: Callable[..., Any], source: Callable[..., Any]) -> None:
    """Let NiceGUI see the builder's path and query parameters (all but the leading principal)."""
    import inspect

    params = list(inspect.signature(source).parameters.values())[1:]
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    target.__signature__ = inspect.Signature([request, *params])  # type: ignore[attr-defined]
    target.__name__ = source.__name__


def stored_dark_mode() -> bool | None:
    value = app.storage.user.get("dark")
    return value if isinstance(value, bool) else None
