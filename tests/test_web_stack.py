"""`nox_ui/web.py` puts the panel's own layers (trusted proxies, security headers, body limit, and the
machine router for the API and health checks) around NiceGUI's middleware stack by replacing
`build_middleware_stack` on `nicegui.app`. That relies on how Starlette builds the stack and on
NiceGUI not building it differently, so the NiceGUI version is pinned to the range checked here;
these tests fail when that assumption breaks (a NiceGUI outside the pin, or a stack built another way),
before a user finds requests that skip the guard."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import nicegui
from fastapi import FastAPI
from nicegui import app
from nicegui.testing import User
from packaging.requirements import Requirement
from packaging.version import Version
from starlette.applications import Starlette

from nox_ui.app import Services

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_nicegui_is_inside_the_pinned_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirement = next(Requirement(d) for d in project["dependencies"] if d.startswith("nicegui"))
    assert any(spec.operator == "<" for spec in requirement.specifier), "NiceGUI must keep an upper bound"
    assert Version(nicegui.__version__) in requirement.specifier


def test_the_stack_is_built_through_the_method_web_py_replaces() -> None:
    # nicegui.app is a FastAPI app whose requests reach Starlette.__call__, which builds the stack
    # once from `self.build_middleware_stack()`: an instance attribute there is what every request runs.
    assert isinstance(app, FastAPI)
    assert "super().__call__" in inspect.getsource(FastAPI.__call__)
    assert type(app).__call__ is FastAPI.__call__
    assert "self.middleware_stack = self.build_middleware_stack()" in inspect.getsource(Starlette.__call__)


async def test_page_and_machine_requests_both_pass_the_panel_layers(
    app_user: User, accounts: Services
) -> None:
    client = app_user.http_client
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.headers["x-content-type-options"] == "nosniff"  # security headers (the guard)
    assert "set-cookie" not in health.headers  # around NiceGUI's session middleware, not through it
    page = await client.get("/login")
    assert page.status_code == 200
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in page.headers
    assert "set-cookie" in page.headers  # NiceGUI's own stack (its browser session) still runs inside
    too_big = await client.post("/login", content=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413  # the body limit, before NiceGUI sees the request
