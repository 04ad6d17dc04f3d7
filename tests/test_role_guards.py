"""A viewer gets 403 on every admin route, every admin screen and every admin action, and each
refusal is audited. The API routes are found by walking the app, so a new admin route is covered
without editing this file."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from nicegui.testing import User
from sqlmodel import select
from starlette.routing import BaseRoute, Mount

from nox_ui.api import API_PREFIX, create_api, routes
from nox_ui.api.deps import current_principal
from nox_ui.app import Services
from nox_ui.errors import Forbidden
from nox_ui.models import AuditEvent
from nox_ui.plugins import builtin
from nox_ui.roles import PANEL, Principal, Role
from nox_ui.web import machine_router
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer, sign_in


def admin_routes() -> list[tuple[str, str]]:
    """(method, path) of every API route, in every module of nox_ui.api.routes, whose role
    dependency asks for an admin."""
    found: list[tuple[str, str]] = []
    modules = [
        importlib.import_module(f"{routes.__name__}.{m.name}") for m in pkgutil.iter_modules(routes.__path__)
    ]
    for route in (route for module in modules for route in module.router.routes):
        if not isinstance(route, APIRoute):
            continue
        roles = [
            getattr(dep.call, "minimum_role", None)
            for dep in route.dependant.dependencies
            if getattr(dep.call, "minimum_role", None) is not None
        ]
        if Role.ADMIN in roles:
            found.extend((method, route.path) for method in sorted(route.methods or ()))
    return found


def denied_events(services: Services) -> list[AuditEvent]:
    with services.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == "access.denied")
        return list(session.exec(query).all())


def test_a_viewer_gets_403_on_every_admin_api_route(api: TestClient, accounts: Services) -> None:
    found = admin_routes()
    paths = {path for _method, path in found}
    assert {"/users", "/users/{user_id}", "/settings", "/settings/schema", "/audit", "/audit/verify"} <= paths
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    settings_before = accounts.settings.public()
    before = len(denied_events(accounts))
    for method, path in found:
        url = "/api/v1" + re.sub(r"\{[^}]+\}", "1", path)
        response = api.request(method, url, headers=headers, json={})
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["detail"]
    assert len(denied_events(accounts)) - before == len(found)
    # and nothing was changed on the way
    assert {user.username for user in accounts.users.list()} == {"admin", "olga", "victor"}
    assert accounts.settings.public() == settings_before


NAV_ITEMS = builtin.nav_items()
ADMIN_SCREENS = [item.path for item in NAV_ITEMS if item.role is Role.ADMIN]


async def test_a_viewer_gets_403_on_every_admin_screen_and_sees_none_in_the_menu(
    app_user: User, accounts: Services
) -> None:
    assert {"/admin/users", "/admin/settings", "/admin/plugins", "/admin/audit"} <= set(ADMIN_SCREENS)
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    for item in NAV_ITEMS:
        if item.role is Role.ADMIN:
            await app_user.should_not_see(item.label)
    before = len(denied_events(accounts))
    for path in ADMIN_SCREENS:
        response = await app_user.http_client.get(path)
        assert response.status_code == 403, path
        assert "Access denied" in response.text
    assert len(denied_events(accounts)) - before == len(ADMIN_SCREENS)


def admin_actions(services: Services) -> dict[str, Callable[[], Any]]:
    """Every admin action a screen offers, as the service call that screen makes with its user."""
    olga = services.users.get_by_username("olga")
    victor = services.users.get_by_username("victor")
    assert olga.id is not None and victor.id is not None
    viewer = Principal(user_id=victor.id, username="victor", role=Role.VIEWER)
    return {
        "create user": lambda: services.users.create(viewer, "nina", "a long enough password", Role.OPERATOR),
        "change role": lambda: services.users.update(viewer, olga.id or 0, role=Role.ADMIN),
        "disable": lambda: services.users.update(viewer, olga.id or 0, disabled=True),
        "reset password": lambda: services.users.update(
            viewer, olga.id or 0, password="another long password"
        ),
        "end sessions": lambda: services.users.end_sessions(viewer, olga.id or 0),
        "delete user": lambda: services.users.delete(viewer, olga.id or 0),
        "save settings": lambda: services.settings.update(viewer, {"site_name": "Owned"}),
        "import settings": lambda: services.settings.import_(
            viewer, {"format": "nox-ui-settings/1", "settings": {"site_name": "Owned"}}
        ),
        "read audit log": lambda: services.audit.query(requester=viewer),
    }


@pytest.mark.parametrize(
    "action",
    [
        "create user",
        "change role",
        "disable",
        "reset password",
        "end sessions",
        "delete user",
        "save settings",
        "import settings",
        "read audit log",
    ],
)
def test_every_admin_action_refuses_a_viewer_and_changes_nothing(accounts: Services, action: str) -> None:
    actions = admin_actions(accounts)
    assert set(actions) >= {action}
    users_before = [(u.username, u.role, u.disabled, u.password_hash) for u in accounts.users.list()]
    with pytest.raises(Forbidden):
        actions[action]()
    assert [(u.username, u.role, u.disabled, u.password_hash) for u in accounts.users.list()] == users_before
    assert accounts.settings.current.site_name == "Nox UI"


# -- the role sweep: every route of the API and of the machine router ---------------------------------

# Routes anyone may call, and why. A route on neither this list nor guarded by a role fails the sweep.
PUBLIC_API_ROUTES = {
    ("POST", "/auth/token"): "trades a username and password for a token (throttled per account and address)",
    ("GET", "/openapi.json"): "the API's description: no data (documented as public in docs/security.md)",
    ("GET", "/docs"): "Swagger UI over /openapi.json",
    ("GET", "/docs/oauth2-redirect"): "part of Swagger UI",
}
# Routes for any signed-in caller, whatever their role or the token's scopes.
SIGNED_IN_API_ROUTES = {("GET", "/me"): "who the token belongs to"}
MACHINE_ROUTES = {
    "/healthz": "public: liveness for load balancers, says only ok",
    "/readyz": "public: readiness, names a failed check without details",
    "/metrics": "its own bearer check: a token with the metrics:read scope, unless metrics_public is on",
}
CALLERS: dict[str, Role | None] = {
    "anonymous": None,
    "victor": Role.VIEWER,
    "olga": Role.OPERATOR,
    "admin": Role.ADMIN,
}
PASSWORDS = {"victor": VIEWER_PASSWORD, "olga": OPERATOR_PASSWORD, "admin": ADMIN_PASSWORD}
RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def _calls(dependant: Any) -> list[Any]:
    found = []
    for dependency in dependant.dependencies:
        found.append(dependency.call)
        found.extend(_calls(dependency))
    return found


def every_api_route(services: Services) -> list[tuple[str, str, BaseRoute]]:
    """(method, path, route) of every route the API app serves, as `create_api` builds it."""
    api = create_api(services)
    try:
        from fastapi.routing import iter_route_contexts  # newer FastAPI keeps included routers nested
    except ImportError:  # older FastAPI copies every route into app.routes
        flat = [(route.path, route.methods, route) for route in api.routes]  # type: ignore[attr-defined]
    else:
        flat = [(ctx.path, ctx.methods, ctx.original_route) for ctx in iter_route_contexts(api.routes)]
    return [(method, path, route) for path, methods, route in flat for method in sorted(methods or {"*"})]


def minimum_role(route: BaseRoute) -> Role | None:
    if not isinstance(route, APIRoute):
        return None
    roles = [getattr(call, "minimum_role", None) for call in _calls(route.dependant)]
    declared = [role for role in roles if role is not None]
    return max(declared, key=RANK.__getitem__) if declared else None


def test_every_route_declares_a_role_or_sits_on_an_allowlist(services: Services) -> None:
    unguarded = []
    allowlisted = set()
    guarded = 0
    for method, path, route in every_api_route(services):
        key = (method, path)
        if method == "HEAD":
            key = ("GET", path)  # Starlette answers HEAD with the GET route
        if minimum_role(route) is not None:
            guarded += 1
        elif key in PUBLIC_API_ROUTES:
            allowlisted.add(key)
        elif key in SIGNED_IN_API_ROUTES:
            assert isinstance(route, APIRoute) and current_principal in _calls(route.dependant), key
            allowlisted.add(key)
        else:
            unguarded.append(key)
    assert not unguarded, f"routes without a role dependency and not on an allowlist: {unguarded}"
    assert guarded >= 45
    # the allowlists name only routes that exist, so they cannot silently grow stale
    assert allowlisted == set(PUBLIC_API_ROUTES) | set(SIGNED_IN_API_ROUTES)

    machine = machine_router(services).routes
    mounts = [route for route in machine if isinstance(route, Mount)]
    assert [mount.path for mount in mounts] == [API_PREFIX]  # the API above, with its own guards
    assert {route.path for route in machine if not isinstance(route, Mount)} == set(MACHINE_ROUTES)  # type: ignore[attr-defined]


def write_routes(services: Services) -> list[tuple[str, str, Role | None]]:
    return [
        (method, path, minimum_role(route))
        for method, path, route in every_api_route(services)
        if method in {"POST", "PUT", "PATCH", "DELETE"}
    ]


def test_every_write_route_lets_in_only_the_roles_it_declares(api: TestClient, accounts: Services) -> None:
    accounts.settings.update(PANEL, {"api_rate_limit": "100000/second"})
    headers: dict[str, dict[str, str]] = {"anonymous": {}} | {
        name: bearer(api, name, password) for name, password in PASSWORDS.items()
    }
    routes = write_routes(accounts)
    assert len(routes) >= 23 and ("POST", "/processes/{pid}/signal", Role.OPERATOR) in routes
    users_before = [(u.username, u.role, u.disabled, u.password_hash) for u in accounts.users.list()]
    settings_before = accounts.settings.public()
    wrong = []
    for method, path, needed in routes:
        public = (method, path) in PUBLIC_API_ROUTES
        # An id nothing has and an empty body: an allowed caller gets 404 or 422, and nothing changes.
        url = API_PREFIX + re.sub(r"\{[^}]+\}", "999999", path)
        for caller, role in CALLERS.items():
            status = api.request(method, url, headers=headers[caller], json={}).status_code
            if public:
                expected = "not 401/403"
            elif role is None:
                expected = "401"
            elif needed is not None and RANK[role] < RANK[needed]:
                expected = "403"
            else:
                expected = "not 401/403"
            allowed = status not in (401, 403) if expected == "not 401/403" else status == int(expected)
            if not allowed:
                wrong.append(f"{method} {path} as {caller}: {status}, expected {expected}")
    assert not wrong, "\n".join(wrong)
    assert [(u.username, u.role, u.disabled, u.password_hash) for u in accounts.users.list()] == users_before
    assert accounts.settings.public() == settings_before | {"api_rate_limit": "100000/second"}
