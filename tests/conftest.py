from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nicegui import ui
from nicegui.testing import User

from nox_ui.api import API_PREFIX, create_api
from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.roles import PANEL
from nox_ui.server import prepare

# NiceGUI's simulated user, and the loopback SMTP and HTTP receivers (tests/receivers.py) as fixtures
pytest_plugins = ["nicegui.testing.user_plugin", "tests.receivers"]

ADMIN_PASSWORD = "correct horse battery"
VIEWER_PASSWORD = "viewer password 123"
OPERATOR_PASSWORD = "operator password 1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", secret_key="test-secret-key")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = prepare(settings)
    yield built
    built.close()


@pytest.fixture
def accounts(services: Services) -> Services:
    """An admin, an operator and a viewer."""
    services.users.create(PANEL, "admin", ADMIN_PASSWORD, "admin")
    services.users.create(PANEL, "olga", OPERATOR_PASSWORD, "operator")
    services.users.create(PANEL, "victor", VIEWER_PASSWORD, "viewer")
    return services


@pytest.fixture
def api(accounts: Services) -> Iterator[TestClient]:
    """The REST API exactly as served, mounted at /api/v1 of a bare app."""
    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))
    with TestClient(outer, client=("203.0.113.9", 5000)) as client:
        yield client


def bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def app_user(user: User, accounts: Services) -> User:
    """NiceGUI's simulated user, against the real pages wired to real services."""
    from nox_ui.web import mount_app

    mount_app(accounts)
    return user


async def sign_in(user: User, username: str, password: str, next_path: str = "/") -> None:
    await user.open(f"/login?next={next_path}")
    user.find(marker="username").type(username)
    user.find(marker="password").type(password).trigger("keydown.enter")
    await user.should_see(marker="user-menu", retries=50)


def nav_labels(user: User) -> list[str]:
    """The entries of the nav drawer, in order (the header and a page's own texts may use the same words)."""
    (drawer,) = user.find(kind=ui.left_drawer).elements
    return [e.text for e in drawer.descendants() if isinstance(e, ui.item_section) and e.text]


async def sign_out(user: User) -> None:
    """What the frame's Sign out does in a browser: POST its form (with the page's CSRF token) to /logout."""
    form = user.find(marker="sign-out-form").elements.pop()
    match = re.search(r'name="csrf" value="([^"]+)"', getattr(form, "content", ""))
    assert match, "the page has no sign-out form"
    response = await user.http_client.post("/logout", data={"csrf": match.group(1)})
    assert response.status_code == 303, response.text
    await user.open("/login")


def stdin(text: str) -> io.StringIO:
    return io.StringIO(text)
