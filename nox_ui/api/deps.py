"""Request dependencies: the services, and the principal behind a bearer token, checked by role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nox_ui.app import Services
from nox_ui.errors import Unauthenticated
from nox_ui.roles import Need, Principal, Role, Target, check, refusal
from nox_ui.services.credentials import bearer_token

_bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/token or a personal access token")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def current_principal(
    request: Request,
    services: Services = Depends(get_services),
    _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # for the OpenAPI schema
) -> Principal:
    principal = await bearer_principal(services, request.headers.get("authorization"))
    if principal is None:
        raise Unauthenticated(
            "missing bearer token"
            if bearer_token(request.headers.get("authorization")) is None
            else "invalid or expired token"
        )
    return principal


async def bearer_principal(services: Services, authorization: str | None) -> Principal | None:
    """The principal behind an `Authorization: Bearer` header (the API's and /metrics' one parser),
    or None. A token seen in the last seconds is answered from memory; otherwise the database is read
    in a worker thread, so the event loop (and every live dashboard) never waits on it."""
    token = bearer_token(authorization)
    if token is None:
        return None
    principal = services.auth.cached_token(token)
    if principal is None:
        principal = await run_in_threadpool(services.auth.resolve_token, token)
    return principal


async def check_request(
    services: Services, request: Request, principal: Principal, need: Role | Need
) -> Principal:
    """`roles.check` for a request: the refusal (audited as `access.denied` against the method and
    path) is written in a worker thread; an allowed request costs no thread hop."""
    if refusal(principal, need) is None:
        return principal
    target = Target("api", f"{request.method} {request.url.path}")
    return await run_in_threadpool(
        check, principal, need, target, audit=services.audit, ip=client_ip(request)
    )


def require_role(minimum: Role) -> Callable[..., Awaitable[Principal]]:
    """The caller's role must reach `minimum` and the token must carry the matching scope
    (`roles.SCOPE_FOR_ROLE`)."""

    async def dependency(
        request: Request,
        principal: Principal = Depends(current_principal),
        services: Services = Depends(get_services),
    ) -> Principal:
        return await check_request(services, request, principal, Need.api(minimum))

    dependency.minimum_role = minimum  # type: ignore[attr-defined]  # lets tests find every route's role
    return dependency


async def throttle(request: Request, services: Services = Depends(get_services)) -> None:
    """Every API request counts against `api_rate_limit` for its client address (429 past it)."""
    services.api_limits.check(client_ip(request))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
