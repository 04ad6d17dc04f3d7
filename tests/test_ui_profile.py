"""/profile through NiceGUI's simulated user: own sessions (this browser marked, ending others), personal
API tokens (created in a dialog and shown once, revoked with a confirmation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.pages.profile import short_user_agent
from nox_ui.roles import Principal
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, sign_in

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


def rows(user: User, marker: str) -> list[dict[str, Any]]:
    table = user.find(marker=marker).elements.pop()
    assert isinstance(table, ui.table)
    return list(table.rows)


def value_of(user: User, marker: str) -> Any:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.input)
    return element.value


async def settle(predicate: Callable[[], object], retries: int = 60) -> None:
    for _ in range(retries):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def victor(accounts: Services) -> Principal:
    """A principal for victor from a session of its own (for making tokens outside the page)."""
    user_id = accounts.users.get_by_username("victor").id or 0
    principal = accounts.auth.resolve_session(accounts.auth.start_session(user_id))
    assert principal is not None
    return principal


def test_short_user_agent() -> None:
    assert short_user_agent(FIREFOX) == "Firefox on Linux"
    chrome_android = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
    assert short_user_agent(chrome_android) == "Chrome on Android"
    safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1"
    assert short_user_agent(safari) == "Safari on iOS"
    edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36 Edg/126.0"
    assert short_user_agent(edge) == "Edge on Windows"
    assert short_user_agent("curl/8.5.0") == "curl"
    assert short_user_agent("") == "-"


async def test_sessions_list_marks_this_browser_and_ends_another(app_user: User, accounts: Services) -> None:
    victor_id = accounts.users.get_by_username("victor").id or 0
    other = accounts.auth.start_session(victor_id, ip="198.51.100.4", user_agent=FIREFOX)
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="sessions-table")
    listed = rows(app_user, "sessions-table")
    assert len(listed) == 2
    current = [r for r in listed if r["current"]]
    assert len(current) == 1
    firefox = next(r for r in listed if not r["current"])
    assert (firefox["browser"], firefox["ip"]) == ("Firefox on Linux", "198.51.100.4")

    app_user.find(marker="sessions-table").trigger("rowAction", {"action": "end", "id": firefox["id"]})
    await app_user.should_see("End this session?")
    app_user.find(marker="confirm-action").click()
    await settle(lambda: accounts.auth.resolve_session(other) is None)
    await settle(lambda: [r["id"] for r in rows(app_user, "sessions-table")] == [current[0]["id"]])
    assert accounts.audit.query(action="auth.session.end", limit=1).events[0].actor_name == "victor"
    await app_user.should_see(marker="change-password")  # this page is untouched


async def test_end_all_other_sessions_keeps_this_browser(app_user: User, accounts: Services) -> None:
    victor_id = accounts.users.get_by_username("victor").id or 0
    others = [accounts.auth.start_session(victor_id) for _ in range(2)]
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="sessions-table")
    app_user.find(marker="end-other-sessions").click()
    app_user.find(marker="confirm-action").click()
    await settle(lambda: all(accounts.auth.resolve_session(c) is None for c in others))
    await settle(lambda: len(rows(app_user, "sessions-table")) == 1)
    assert rows(app_user, "sessions-table")[0]["current"] is True
    assert len(accounts.auth.list_sessions(victor_id)) == 1


async def test_a_page_whose_session_is_ended_elsewhere_goes_to_sign_in(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="sessions-table")
    victor_id = accounts.users.get_by_username("victor").id or 0
    (page_session,) = accounts.auth.list_sessions(victor_id)
    elsewhere = victor(accounts)  # another browser of victor's ends this page's session
    await asyncio.to_thread(accounts.auth.end_own_session, elsewhere, page_session.id or 0)
    await app_user.should_see(marker="sign-in", retries=50)


async def test_creating_a_token_shows_it_once(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="tokens-table")
    assert rows(app_user, "tokens-table") == []
    app_user.find(marker="new-token").click()
    await app_user.should_see("New API token")
    # an operator may grant read, write and metrics:read, never admin
    for scope in ("read", "write", "metrics:read"):
        await app_user.should_see(marker=f"token-scope-{scope}")
    await app_user.should_not_see(marker="token-scope-admin")

    app_user.find(marker="create-token").click()  # no name yet
    await app_user.should_see("token name is required", retries=50)
    app_user.find(marker="token-name").type("deploy script")
    app_user.find(marker="token-scope-write").click()
    app_user.find(marker="token-expiry").click()
    app_user.find("1 year").click()
    app_user.find(marker="create-token").click()
    await settle(lambda: (value_of(app_user, "token-secret") or "").startswith("nox_"))
    await app_user.should_see("it is shown this once")
    secret = value_of(app_user, "token-secret")

    principal = accounts.auth.resolve_token(secret)
    assert principal is not None and principal.username == "olga"
    assert principal.scopes == frozenset({"read", "write"})
    await settle(
        lambda: len(rows(app_user, "tokens-table")) == 1
    )  # the list is re-read after the secret shows
    (listed,) = rows(app_user, "tokens-table")
    assert (listed["name"], listed["scopes"], listed["status"], listed["kind"]) == (
        "deploy script",
        "read, write",
        "active",
        "personal",
    )
    assert listed["expires"] != "never"
    assert secret not in str(listed)

    app_user.find(marker="token-done").click()
    assert value_of(app_user, "token-secret") == ""  # gone from the page once the dialog closes


async def test_revoking_a_token_in_the_ui(app_user: User, accounts: Services) -> None:
    issued = accounts.auth.create_personal_token(victor(accounts), "old script", ["read"])
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="tokens-table")
    assert [r["name"] for r in rows(app_user, "tokens-table")] == ["old script"]
    app_user.find(marker="tokens-table").trigger("rowAction", {"action": "revoke", "id": issued.record.id})
    await app_user.should_see("Revoke old script?")
    app_user.find(marker="confirm-action").click()
    await settle(lambda: accounts.auth.resolve_token(issued.token) is None)
    await settle(lambda: rows(app_user, "tokens-table") == [])
    assert accounts.audit.query(action="auth.token.revoke", limit=1).events[0].actor_name == "victor"


async def test_a_viewer_is_offered_only_the_scopes_of_the_role(app_user: User) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    app_user.find(marker="new-token").click()
    await app_user.should_see(marker="token-scope-read")
    await app_user.should_see(marker="token-scope-metrics:read")
    await app_user.should_not_see(marker="token-scope-write")
    await app_user.should_not_see(marker="token-scope-admin")


async def test_guessing_the_current_password_is_throttled_and_audited(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, "/profile")
    app_user.find(marker="new").type("a brand new passphrase")
    app_user.find(marker="confirm").type("a brand new passphrase")
    limit = accounts.settings.current.login_max_failures
    for tried in range(1, limit + 1):
        app_user.find(marker="current").clear().type("a wrong guess")
        app_user.find(marker="change-password").click()
        await settle(lambda n=tried: accounts.audit.query(action="auth.reauth.failure").total == n, 200)  # type: ignore[misc]
    await app_user.should_see("The current password is not right.")
    app_user.find(marker="current").clear()
    app_user.find(marker="current").type(VIEWER_PASSWORD)
    app_user.find(marker="change-password").click()
    await app_user.should_see("Too many failed password checks", retries=100)
    failures = accounts.audit.query(action="auth.reauth.failure").events
    assert len(failures) == limit + 1
    assert accounts.auth.check_password("victor", VIEWER_PASSWORD)  # the password did not change
