"""Wires the services into NiceGUI's app: health checks, the API, the sign-in cookie endpoints and the UI.

The UI (pages/ and components/) is found through the `nox_ui.ui` entry-point group, so this core
package never imports a page; plugins will add their pages the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from loguru import logger
from nicegui import Client, app
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from nox_ui.api import API_PREFIX, create_api
from nox_ui.api.deps import bearer_principal, check_request
from nox_ui.app import Services
from nox_ui.errors import Forbidden, NoxError
from nox_ui.http_guard import guard_http
from nox_ui.roles import METRICS, Need, Role, refusal
from nox_ui.services.auth import SESSION_COOKIE
from nox_ui.supervisor import JobState

UI_ENTRY_POINT_GROUP = "nox_ui.ui"


def safe_next(target: str | None) -> str:
    """Only same-site paths: never '//host' or a scheme, so `next` cannot send a user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def browser_id(request: Request) -> str:
    """The id NiceGUI keeps in the browser's signed session cookie: sign-in tickets are bound to it."""
    session = request.scope.get("session") or {}
    return str(session.get("id", ""))


def _same_origin(request: Request, base_url: str) -> bool:
    """A browser's Origin header, when it sends one, must be this panel's (as served or as configured)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    served = f"{request.url.scheme}://{request.url.netloc}"
    return origin in {served, base_url.rstrip("/")}


def job_view(state: JobState, detailed: bool) -> dict[str, Any]:
    """A background job on /readyz: its name and status; for an admin, also why and since when."""
    if not detailed:
        return {"name": state.name, "status": state.status}
    return {
        "name": state.name,
        "status": state.status,
        "failing_since": _iso(state.failing_since),
        "last_error": state.last_error,
        "problem": state.problem,
        "restarts": state.restarts,
        "failures": state.failures,
        "last_ok": _iso(state.last_ok),
    }


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts is not None else None


def login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)


class BuiltOnFirstRequest:
    """An ASGI app built by `build` (in a worker thread, once) when its first request arrives: what a
    server never asked for stays out of its memory. Mounted as the API, whose route modules and
    models are ~5 MiB resident; every route is declared with its role as before, only later."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    self._app = await run_in_threadpool(self._build)
        await self._app(scope, receive, send)


# Machine endpoints: no page, no browser session, no gzip, no cache headers.
FAST_PATHS = (API_PREFIX + "/", "/metrics", "/healthz", "/readyz")


def machine_router(services: Services) -> Router:
    """The API and the endpoints for load balancers and Prometheus, outside NiceGUI's page routes."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # An admin's bearer token (admin scope) also gets each job's details; anyone else names and status.
        try:
            principal = await bearer_principal(services, request.headers.get("authorization"))
        except Exception:  # the database is down: the checks below say so, to anyone
            principal = None
        detailed = principal is not None and refusal(principal, Need.api(Role.ADMIN)) is None
        return await run_in_threadpool(readiness, detailed)

    def readiness(detailed: bool) -> Response:
        checks: dict[str, str] = {}
        try:
            services.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means "not ready"; anonymous callers learn only which
            logger.opt(exception=exc).warning("readiness: the database does not answer")
            checks["database"] = "error: the database does not answer (details in the server log)"
        checks["sampler"] = "ok" if services.metrics.running() else "error: no sample in the last intervals"
        ready = all(value == "ok" for value in checks.values())
        # A degraded collector is reported but does not make the panel unready: the others go on.
        # So is a failing background job: it restarts by itself, and the panel serves what it can meanwhile.
        body = {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            "degraded_collectors": services.metrics.sampler.degraded(),
            "jobs": [job_view(state, detailed) for state in services.supervisor.states()],
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    registries: list[Any] = []  # built at the first scrape: prometheus_client is not loaded before

    async def prometheus_metrics(request: Request) -> Response:
        if not services.config.metrics_public:
            # The API's token parsing and check (roles.METRICS: the metrics:read scope), refusal audited.
            principal = await bearer_principal(services, request.headers.get("authorization"))
            if principal is None:
                return PlainTextResponse(
                    "a bearer token with the metrics:read scope is required\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                await check_request(services, request, principal, METRICS)
            except Forbidden as exc:
                return PlainTextResponse(exc.message + "\n", status_code=403)
        return await run_in_threadpool(scrape)

    def scrape() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from nox_ui.prometheus import build_registry, render

        if not registries:
            registries.append(build_registry(services.metrics, services.cache, services.supervisor))
        return Response(render(registries[0]), media_type=CONTENT_TYPE_LATEST)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    # This router runs outside NiceGUI's exception handling (see _route_machine_requests), so its own
    # not-found and method-not-allowed (a path the mount cannot match, such as one with a newline in
    # an id, or POST /healthz) are answered here as JSON instead of escaping as a 500.
    return Router(
        [
            Mount(API_PREFIX, BuiltOnFirstRequest(lambda: create_api(services))),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", prometheus_metrics, methods=["GET"]),
        ],
        middleware=[Middleware(ExceptionMiddleware, handlers={HTTPException: http_error})],
    )


def _route_machine_requests(machine: Router, services: Services) -> None:
    """Send API, /metrics and health requests straight to their own router, around NiceGUI's page
    middleware (session cookie, gzip, cache headers, prefix redirects), which they need none of;
    it more than doubles the requests per second the API answers (docs/benchmarks.md).

    This replaces `build_middleware_stack` on `nicegui.app` rather than using `ui.run_with` on an app
    of our own: NiceGUI's testing `User` drives `nicegui.app` itself, so with a parent app every test
    through the simulated user would skip these layers, and `serve` would take over uvicorn's start from
    `ui.run`. The NiceGUI version is pinned to the range this was checked against, and
    tests/test_web_stack.py fails when the assumption (Starlette builds the stack through this method)
    breaks."""
    build_page_stack = type(app).build_middleware_stack.__get__(app)

    def build() -> ASGIApp:
        pages = build_page_stack()

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and (
                scope["path"].startswith(FAST_PATHS) or scope["path"] == API_PREFIX
            ):
                await machine(scope, receive, send)
            else:
                await pages(scope, receive, send)

        return guard_http(
            dispatch,
            trusted_proxies=services.config.trusted_proxy_list,
            max_body=lambda: services.settings.current.max_request_kib * 1024,
            https=services.config.resolved_base_url.startswith("https://"),
        )

    app.build_middleware_stack = build  # type: ignore[method-assign]
    app.middleware_stack = None  # rebuilt on the next request


def mount_app(services: Services) -> None:
    """Attach everything to nicegui.app. Safe to call again (tests rebuild the app per case)."""
    owned = {"/auth/complete", "/logout"}
    app.routes[:] = [r for r in app.routes if getattr(r, "path", None) not in owned]
    app.state.services = services
    secure_cookie = services.config.resolved_base_url.startswith("https://")
    max_age = int(services.auth.session_policy.absolute.total_seconds())
    _route_machine_requests(machine_router(services), services)

    @app.get("/auth/complete", include_in_schema=False)
    def complete_sign_in(request: Request, ticket: str = "", next: str = "/") -> Response:
        try:
            token = services.auth.redeem_ticket(
                ticket,
                browser_id(request),
                ip=request.client.host if request.client else "",
                user_agent=request.headers.get("user-agent", ""),
            )
        except NoxError as exc:
            logger.info("sign-in completion refused: {}", exc.message)
            return RedirectResponse("/login?expired=1", status_code=303)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max_age,
            httponly=True,
            samesite="lax",
            secure=secure_cookie,
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        """Sign-out: a form POST carrying the session's CSRF token (from the frame's menu); it ends the
        session on the server and drops the cookie. A forged or cross-site request changes nothing."""
        cookie = request.cookies.get(SESSION_COOKIE, "")
        form = await request.form()
        token = form.get("csrf")
        if not _same_origin(request, services.config.resolved_base_url) or not (
            isinstance(token, str) and services.auth.check_sign_out_token(cookie, token)
        ):
            logger.info("sign-out refused: missing or wrong CSRF token, or another site's form")
            return PlainTextResponse(
                "Sign-out refused: this form did not come from your Nox UI page. "
                "Use Sign out in the panel's user menu.\n",
                status_code=403,
            )
        await run_in_threadpool(
            services.auth.end_session, cookie, ip=request.client.host if request.client else ""
        )
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/logout", include_in_schema=False)
    def sign_out_by_link() -> Response:
        # A link or an image tag on another site must not sign anyone out: only the POST above does.
        return RedirectResponse("/", status_code=303)

    services.metrics.client_count = lambda: sum(
        1 for c in Client.instances.values() if c.has_socket_connection
    )
    if app.is_started:  # mounted into a running app (the tests' simulated user)
        services.start()
    else:
        app.on_startup(services.start)
    app.on_shutdown(services.stop)

    for entry_point in entry_points(group=UI_ENTRY_POINT_GROUP):
        logger.debug("loading UI from {}", entry_point.value)
        entry_point.load()(services)
