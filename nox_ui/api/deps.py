"""Request dependencies: the services, and the principal behind a bearer token, checked by role."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nox_ui.app import Services
from nox_ui.errors import Unauthenticated
from nox_ui.roles import Principal, Role, authorize

_bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/token or a personal access token")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def current_principal(
    services: Services = Depends(get_services),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    if credentials is None:
        raise Unauthenticated("missing bearer token")
    principal = services.auth.resolve_token(credentials.credentials)
    if principal is None:
        raise Unauthenticated("invalid or expired token")
    return principal


def require_role(minimum: Role) -> Callable[..., Principal]:
    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        return authorize(principal, minimum)

    return dependency


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
