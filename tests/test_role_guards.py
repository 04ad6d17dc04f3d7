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

from components.frame import NAV_ITEMS
from nox_ui.api import routes
from nox_ui.app import Services
from nox_ui.errors import Forbidden
from nox_ui.models import AuditEvent
from nox_ui.roles import Principal, Role
from tests.conftest import VIEWER_PASSWORD, bearer, sign_in


def admin_routes() -> list[tuple[str, str]]:
    """(method, path) of every API route, in every module of nox_ui.api.routes, whose role
    dependency asks for an admin."""
    found = []
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
    settings_before = accounts.config.public()
    before = len(denied_events(accounts))
    for method, path in found:
        url = "/api/v1" + re.sub(r"\{[^}]+\}", "1", path)
        response = api.request(method, url, headers=headers, json={})
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["detail"]
    assert len(denied_events(accounts)) - before == len(found)
    # and nothing was changed on the way
    assert {user.username for user in accounts.users.list()} == {"admin", "olga", "victor"}
    assert accounts.config.public() == settings_before


ADMIN_SCREENS = [item.path for item in NAV_ITEMS if item.role is Role.ADMIN]


async def test_a_viewer_gets_403_on_every_admin_screen_and_sees_none_in_the_menu(
    app_user: User, accounts: Services
) -> None:
    assert {"/admin/users", "/admin/settings", "/admin/audit"} <= set(ADMIN_SCREENS)
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
        "create user": lambda: services.users.create(
            "nina", "a long enough password", Role.OPERATOR, actor=viewer
        ),
        "change role": lambda: services.users.update(viewer, olga.id or 0, role=Role.ADMIN),
        "disable": lambda: services.users.update(viewer, olga.id or 0, disabled=True),
        "reset password": lambda: services.users.update(
            viewer, olga.id or 0, password="another long password"
        ),
        "end sessions": lambda: services.users.end_sessions(viewer, olga.id or 0),
        "delete user": lambda: services.users.delete(viewer, olga.id or 0),
        "save settings": lambda: services.config.update(viewer, {"site_name": "Owned"}),
        "import settings": lambda: services.config.import_(
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
    assert accounts.config.current.site_name == "Nox UI"
