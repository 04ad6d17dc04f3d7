"""The REST API: a FastAPI sub-application mounted at /api/v1 with its own OpenAPI document.

Importing this package is cheap; the route modules and their request and response models (~5 MiB
resident) are imported by `create_api`, which `serve` runs on the first request to the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from nox_ui import __version__, incidents
from nox_ui.api.deps import current_principal, throttle
from nox_ui.app import Services
from nox_ui.errors import NoxError, RateLimited

API_PREFIX = "/api/v1"


def create_api(services: Services) -> FastAPI:
    from nox_ui.api.routes import (
        alerts,
        audit,
        auth,
        metrics,
        notifiers,
        plugins,
        processes,
        search,
        settings,
        tokens,
        users,
    )

    api = FastAPI(
        title="Nox UI API",
        version=__version__,
        description="Server administration and monitoring. Authenticate with `POST /auth/token`, "
        "then send `Authorization: Bearer <token>`.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(throttle)],
    )
    api.state.services = services
    modules = (auth, users, processes, metrics, audit, tokens, settings, notifiers, alerts, plugins, search)
    for module in modules:
        _declare_errors(module.router)
        api.include_router(module.router)
    _add_error_schema(api)
    plugins.mount_plugin_routes(api, services)

    @api.exception_handler(NoxError)
    async def domain_error(_request: Request, exc: NoxError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if exc.status_code == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log under an incident id; the client gets the id and nothing else.
        incident = incidents.record(exc, f"API {request.method} {request.url.path}")
        plugin = getattr(request.state, "nox_plugin", None)
        if plugin is not None:  # a plugin's route raised: the plugin is marked failed and withdrawn
            services.plugins.report_failure(plugin, f"API {request.method} {request.url.path}", exc)
            detail = f"plugin {plugin!r} failed and has been switched off; see /admin/plugins"
        else:
            detail = "internal error; the server logged it"
        detail += f" (incident {incident.id})"
        return JSONResponse({"detail": detail, "incident": incident.id}, status_code=500)

    return api


# Every error body is {"detail": "a sentence"}, or a list of field errors for a request that does not
# validate (FastAPI's own shape, also used by the settings routes).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {
                                "type": "array",
                                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                            },
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            ]
        },
        "incident": {"type": "string", "description": "an unexpected error's id in the log (500 only)"},
    },
}
_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that change nothing, so cannot conflict with anything.
_NOT_A_CHANGE = {"/auth/token", "/alerts/rules/preview"}
# Statuses that the dependencies do not show: the password grant checks credentials itself.
_OWN_ERRORS = {
    "/auth/token": {401: "wrong username or password, or the account is disabled"},
    "/metrics/history": {404: "no metric or series of that name"},
}


def _dependency_calls(dependant: Dependant) -> list[Any]:
    calls = []
    for dependency in dependant.dependencies:
        calls.append(dependency.call)
        calls.extend(_dependency_calls(dependency))
    return calls


def error_statuses(route: APIRoute) -> dict[int, str]:
    """The error statuses a route can answer with, read from what it depends on and what it takes."""
    calls = _dependency_calls(route.dependant)
    statuses = {429: "too many requests from this address (`api_rate_limit`); see Retry-After"}
    statuses.update(_OWN_ERRORS.get(route.path, {}))
    if current_principal in calls:
        statuses[401] = "no bearer token, or an invalid, expired or revoked one"
    if any(getattr(call, "minimum_role", None) is not None for call in calls):
        statuses[403] = "the caller's role or the token's scopes do not allow this"
    has_params = bool(
        route.dependant.path_params or route.dependant.query_params or route.dependant.body_params
    )
    if has_params:
        statuses[422] = "a parameter or the body is not valid; nothing was changed"
    if route.dependant.path_params:
        statuses[404] = "no such object"
    if route.dependant.body_params:
        statuses[400] = "the body is not readable JSON"
        statuses[413] = "the body is larger than `max_request_kib`"
    if (route.methods or set()) & _WRITE_METHODS and route.path not in _NOT_A_CHANGE:
        statuses[409] = "the change conflicts with the current state (a name in use, already done, ...)"
    if (route.methods or set()) & _WRITE_METHODS:
        statuses[507] = "the server's disk is full: nothing was saved (errors.StorageFull)"
    return statuses


def _declare_errors(router: APIRouter) -> None:
    """Document every error status each route can give, so the OpenAPI document is a contract a client
    (and the fuzz test, tests/test_api_fuzz.py) can hold the API to. A route's own `responses=` win."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            for status, description in error_statuses(route).items():
                route.responses.setdefault(status, {"description": description, "content": _ERROR_REF})


def _add_error_schema(api: FastAPI) -> None:
    """The `Error` schema the declared error responses refer to, in the document FastAPI builds."""

    def openapi() -> dict[str, Any]:
        document = FastAPI.openapi(api)  # built once and cached by FastAPI
        document.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
        return document

    api.openapi = openapi  # type: ignore[method-assign]
