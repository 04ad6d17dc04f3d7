"""The screens through NiceGUI's simulated user: fast, real pages, real services, real SQLite."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.roles import PANEL
from nox_ui.services.auth import SESSION_COOKIE
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, nav_labels, sign_in, sign_out


async def test_anonymous_visitor_is_sent_to_login_with_next(app_user: User) -> None:
    response = await app_user.http_client.get("/admin/users?tab=2", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/users%3Ftab%3D2"


async def test_login_form_has_labelled_fields_and_signs_in_with_enter(app_user: User) -> None:
    await app_user.open("/login")
    await app_user.should_see("Username")
    await app_user.should_see("Password")
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    await app_user.should_see(marker="cpu-value")
    await app_user.should_see("admin")
    assert app_user.http_client.cookies.get(SESSION_COOKIE)


async def test_sign_in_lands_on_the_page_asked_for(app_user: User) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see("Change password")
    await app_user.should_see("victor")


async def test_wrong_password_unknown_user_and_disabled_user_get_the_same_message(
    app_user: User, accounts: Services
) -> None:
    accounts.users.set_disabled(PANEL, "olga", True)
    for username, password in (
        ("admin", "not the password"),
        ("nobody", "whatever123456"),
        ("olga", OPERATOR_PASSWORD),
    ):
        await app_user.open("/login")
        app_user.find(marker="username").type(username)
        app_user.find(marker="password").type(password).trigger("keydown.enter")
        await app_user.should_see("Invalid username or password.", retries=30)
        await app_user.should_not_see(marker="user-menu")


async def test_sign_out_ends_the_session(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    cookie = app_user.http_client.cookies.get(SESSION_COOKIE)
    assert accounts.auth.resolve_session(cookie) is not None
    await sign_out(app_user)
    await app_user.should_see(marker="sign-in", retries=30)
    assert accounts.auth.resolve_session(cookie) is None
    # The old cookie opens nothing any more.
    app_user.http_client.cookies.set(SESSION_COOKIE, cookie or "")
    response = await app_user.http_client.get("/", follow_redirects=False)
    assert response.status_code == 303


async def test_disabling_a_user_closes_their_open_page_at_once(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD)
    await app_user.should_see(marker="cpu-value")
    accounts.users.set_disabled(PANEL, "olga", True)
    await app_user.should_see(marker="sign-in", retries=30)
    response = await app_user.http_client.get("/", follow_redirects=False)
    assert response.status_code == 303


async def test_viewer_is_refused_admin_pages_with_403(app_user: User) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    labels = nav_labels(app_user)
    assert "Dashboard" in labels and "Users" not in labels, labels
    response = await app_user.http_client.get("/admin/users")
    assert response.status_code == 403
    assert "Access denied" in response.text


async def test_admin_sees_users_page(app_user: User) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    assert "Users" in nav_labels(app_user)
    await app_user.open("/admin/users")
    table = app_user.find(ui.table).elements.pop()
    assert {row["username"] for row in table.rows} == {"admin", "olga", "victor"}


async def test_changing_own_password_keeps_this_browser_and_ends_the_others(
    app_user: User, accounts: Services
) -> None:
    other = accounts.auth.start_session(accounts.users.get_by_username("victor").id or 0)
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    app_user.find(marker="current").type(VIEWER_PASSWORD)
    app_user.find(marker="new").type("a brand new passphrase")
    app_user.find(marker="confirm").type("a brand new passphrase")
    app_user.find(marker="change-password").click()
    await app_user.should_see("Password changed", retries=50)
    assert accounts.auth.check_password("victor", "a brand new passphrase").username == "victor"
    assert accounts.auth.resolve_session(other) is None
    await app_user.should_see(marker="change-password")  # this page stays open and signed in


async def test_profile_refuses_a_wrong_current_password(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    app_user.find(marker="current").type("not my password")
    app_user.find(marker="new").type("a brand new passphrase")
    app_user.find(marker="confirm").type("a brand new passphrase")
    app_user.find(marker="change-password").click()
    await app_user.should_see("The current password is not right.", retries=30)
    assert accounts.auth.check_password("victor", VIEWER_PASSWORD).username == "victor"


async def test_first_run_setup_creates_the_admin_then_closes(user: User, services: Services) -> None:
    from nox_ui.web import mount_app

    mount_app(services)
    token = services.setup.token()
    assert token
    assert (await user.http_client.get("/setup")).status_code == 403
    assert (await user.http_client.get("/setup?token=wrong")).status_code == 403
    await user.open(f"/setup?token={token}")
    user.find(marker="username").type("rosa")
    user.find(marker="password").type("first admin password")
    user.find(marker="confirm").type("first admin password")
    user.find(marker="create").click()
    await user.should_see(marker="sign-in", retries=50)
    assert services.users.get_by_username("rosa").role == "admin"
    assert (await user.http_client.get(f"/setup?token={token}")).status_code == 404
    await sign_in(user, "rosa", "first admin password")
    await user.should_see(marker="cpu-value")
    await user.should_see("rosa")


async def test_setup_refuses_mismatched_passwords(user: User, services: Services) -> None:
    from nox_ui.web import mount_app

    mount_app(services)
    await user.open(f"/setup?token={services.setup.token()}")
    user.find(marker="username").type("rosa")
    user.find(marker="password").type("first admin password")
    user.find(marker="confirm").type("another password!!")
    user.find(marker="create").click()
    await user.should_see("The two passwords differ.")
    await asyncio.sleep(0)
    assert services.users.count() == 0


async def test_api_docs_are_served_under_api_v1(app_user: User) -> None:
    response = await app_user.http_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert "/auth/token" in response.json()["paths"]


async def test_a_link_or_a_forged_form_signs_nobody_out(app_user: User, accounts: Services) -> None:
    """GET /logout (an image tag on any site) and a POST without this page's token change nothing."""
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    cookie = app_user.http_client.cookies.get(SESSION_COOKIE)
    client = app_user.http_client
    assert (await client.get("/logout", follow_redirects=False)).status_code == 303
    forged = [
        await client.post("/logout", data={}),
        await client.post("/logout", data={"csrf": "guessed"}),
        await client.post("/logout", data={"csrf": accounts.auth.sign_out_token("another session")}),
    ]
    assert [r.status_code for r in forged] == [403, 403, 403]
    assert "Sign-out refused" in forged[0].text
    # Another site's form with the right token (as if stolen) is refused by its Origin.
    token = accounts.auth.sign_out_token(cookie or "")
    cross_site = await client.post(
        "/logout", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert accounts.auth.resolve_session(cookie) is not None
    assert app_user.http_client.cookies.get(SESSION_COOKIE) == cookie


async def test_the_sign_in_link_of_another_browser_signs_nobody_in(
    app_user: User, accounts: Services
) -> None:
    """Login CSRF: a ticket issued to one browser, opened in another, is refused."""
    user = accounts.users.get_by_username("admin")
    ticket = accounts.auth.issue_ticket(user, "the attacker's browser id")
    response = await app_user.http_client.get(f"/auth/complete?ticket={ticket}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?expired=1"
    assert SESSION_COOKIE not in response.cookies
