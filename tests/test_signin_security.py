"""What a browser gets from the real sign-in: the session cookie's flags, `?next=` that never leaves
the panel, and a settings import over the size cap refused with nothing changed (page and API)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.services.auth import SESSION_COOKIE
from nox_ui.services.settings import MAX_IMPORT_BYTES
from tests.conftest import ADMIN_PASSWORD, sign_in

EVIL_NEXTS = (
    "//evil.example",
    "//evil.example/%2e%2e",
    "https://evil.example",
    "http:evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "/\t/evil.example",
    " //evil.example",
)


def watch_set_cookies(user: User) -> list[httpx.Response]:
    """Every response of the simulated browser that sets the session cookie, as it came."""
    seen: list[httpx.Response] = []

    async def hook(response: httpx.Response) -> None:
        if any(v.startswith(f"{SESSION_COOKIE}=") for v in response.headers.get_list("set-cookie")):
            seen.append(response)

    user.http_client.event_hooks["response"].append(hook)
    return seen


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    header = next(v for v in response.headers.get_list("set-cookie") if v.startswith(f"{SESSION_COOKIE}="))
    attributes: dict[str, str] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def stays_on_the_panel(location: str) -> bool:
    """A Location a browser resolves against the panel's own origin (a path, not //host or a scheme)."""
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").strip()
    return cleaned.startswith("/") and not cleaned.startswith(("//", "/\\")) and "\\" not in cleaned


async def test_the_session_cookie_is_httponly_and_samesite_and_not_secure_over_http(
    app_user: User, accounts: Services
) -> None:
    seen = watch_set_cookies(app_user)
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    [response] = seen
    assert response.url.path == "/auth/complete"
    attributes = cookie_attributes(response)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # served over plain http here: a Secure cookie would never come back


class TestBehindHttps:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return Settings(
            data_dir=tmp_path / "data", secret_key="test-secret-key", base_url="https://panel.example.org"
        )

    async def test_the_session_cookie_is_secure_when_the_panel_is_https(
        self, app_user: User, accounts: Services
    ) -> None:
        seen = watch_set_cookies(app_user)
        await app_user.open("/login")
        app_user.find(marker="username").type("admin")
        app_user.find(marker="password").type(ADMIN_PASSWORD).trigger("keydown.enter")
        for _ in range(100):  # the sign-in completes once its Argon2 check has run in a worker thread
            if seen:
                break
            await asyncio.sleep(0.05)
        # (the simulated browser then does not send a Secure cookie back over http: no user menu here)
        [response] = seen
        attributes = cookie_attributes(response)
        assert "secure" in attributes and "httponly" in attributes
        assert attributes["samesite"].lower() == "lax"


async def test_next_after_sign_in_never_leaves_the_panel(app_user: User, accounts: Services) -> None:
    seen = watch_set_cookies(app_user)
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path=quote("//evil.example", safe=""))
    [completed] = seen
    assert completed.headers["location"] == "/"
    # Signed in, /login?next=... redirects at once: every hostile target becomes the dashboard.
    for target in EVIL_NEXTS:
        response = await app_user.http_client.get(f"/login?next={quote(target, safe='')}")
        assert response.status_code == 303, target
        location = response.headers["location"]
        assert stays_on_the_panel(location), (target, location)
        assert urlsplit(location)[:2] == ("", ""), (target, location)  # no scheme, no host: this panel
    # An ordinary path is kept.
    response = await app_user.http_client.get(f"/login?next={quote('/alerts?id=3', safe='')}")
    assert response.headers["location"] == "/alerts?id=3"


async def test_a_settings_import_over_the_cap_is_refused_on_the_page(
    app_user: User, accounts: Services
) -> None:
    before = accounts.settings.export()
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    app_user.find(marker="import").click()
    upload = next(iter(app_user.find(marker="settings-upload").elements))
    assert isinstance(upload, ui.upload)
    document = accounts.settings.export()
    document["settings"]["site_name"] = "Too big"
    document["padding"] = "x" * MAX_IMPORT_BYTES  # a valid export, but past the cap
    data = json.dumps(document).encode()
    await upload.handle_uploads([SmallFileUpload("s.json", "application/json", data)])
    await app_user.should_see("Import refused, nothing changed: a settings import is at most 256 KiB")
    assert accounts.settings.export() == before


async def test_a_settings_import_over_the_cap_is_413_from_the_api(app_user: User, accounts: Services) -> None:
    client = app_user.http_client
    token = (
        await client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    ).json()["access_token"]
    before = accounts.settings.export()
    document = accounts.settings.export()
    document["settings"]["site_name"] = "Too big"
    document["padding"] = "x" * MAX_IMPORT_BYTES
    response = await client.post(
        "/api/v1/settings/import", json=document, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 413
    assert "at most 256 KiB" in response.json()["detail"]
    assert accounts.settings.export() == before
    # The same document without the padding goes through (the cap, not the content, refused it).
    del document["padding"]
    response = await client.post(
        "/api/v1/settings/import?dry_run=true", json=document, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert [c["key"] for c in response.json()["changes"]] == ["site_name"]
