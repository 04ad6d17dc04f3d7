"""Request dependencies: the services, and the principal behind a bearer token, checked by role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nox_ui.app import Services
from nox_ui.errors import Forbidden, Unauthenticated
from nox_ui.roles import Principal, Role, authorize
from nox_ui.services.auth import scope_covers

_bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/token or a personal access token")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def current_principal(
    services: Services = Depends(get_services),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    if credentials is None:
        raise Unauthenticated("missing bearer token")
    # A token seen in the last seconds is answered from memory; otherwise the database is read in a
    # worker thread, so the event loop (and every live dashboard) never waits on it.
    principal = services.auth.cached_token(credentials.credentials)
    if principal is None:
        principal = await run_in_threadpool(services.auth.resolve_token, credentials.credentials)
    if principal is None:
        raise Unauthenticated("invalid or expired token")
    return principal


# What a route for each role asks of a token's scopes; a wider scope includes the narrower ones.
SCOPE_FOR_ROLE = {Role.VIEWER: "read", Role.OPERATOR: "write", Role.ADMIN: "admin"}


def require_role(minimum: Role) -> Callable[..., Awaitable[Principal]]:
    """The caller's role must reach `minimum` and the token must carry the matching scope."""
    scope = SCOPE_FOR_ROLE[minimum]

    async def dependency(
        request: Request,
        principal: Principal = Depends(current_principal),
        services: Services = Depends(get_services),
    ) -> Principal:
        try:
            authorize(principal, minimum)
            if not scope_covers(principal.scopes, scope):
                raise Forbidden(f"this token lacks the {scope!r} scope")
        except Forbidden as exc:
            await run_in_threadpool(
                services.audit.record_now,
                actor=principal,
                action="access.denied",
                outcome="denied",
                target_type="api",
                target_id=f"{request.method} {request.url.path}"[:128],
                details={"reason": exc.message, "needs": minimum.value},
                ip=client_ip(request),
            )
            raise
        return principal

    dependency.minimum_role = minimum  # type: ignore[attr-defined]  # lets tests find every route's role
    return dependency


async def throttle(request: Request, services: Services = Depends(get_services)) -> None:
    """Every API request counts against `api_rate_limit` for its client address (429 past it)."""
    services.api_limits.check(client_ip(request))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
