"""The REST API: a FastAPI sub-application mounted at /api/v1 with its own OpenAPI document."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from nox_ui import __version__
from nox_ui.api.deps import throttle
from nox_ui.api.routes import alerts, audit, auth, metrics, notifiers, processes, settings, tokens, users
from nox_ui.app import Services
from nox_ui.errors import NoxError, RateLimited

API_PREFIX = "/api/v1"


def create_api(services: Services) -> FastAPI:
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
    api.include_router(auth.router)
    api.include_router(users.router)
    api.include_router(processes.router)
    api.include_router(metrics.router)
    api.include_router(audit.router)
    api.include_router(tokens.router)
    api.include_router(settings.router)
    api.include_router(notifiers.router)
    api.include_router(alerts.router)

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
        logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    return api
