"""/admin/users through NiceGUI's simulated user: create through the dialog, policy errors in place,
row actions with their guards."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.passwords import verify_password
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, sign_in


def table_rows(user: User) -> list[dict[str, object]]:
    table = user.find(marker="users-table").elements.pop()
    assert isinstance(table, ui.table)
    return list(table.rows)


async def row_action(user: User, action: str, user_id: int) -> None:
    user.find(marker="users-table").trigger("rowAction", {"action": action, "id": user_id})
    await asyncio.sleep(0.05)


async def settle(predicate: object, retries: int = 50) -> None:
    for _ in range(retries):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_admin_creates_an_operator_through_the_dialog(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/users")
    await app_user.should_see(marker="users-table")
    rows = table_rows(app_user)
    assert {r["username"] for r in rows} == {"admin", "olga", "victor"}
    assert {"display_name", "email", "role", "status", "last_login", "sessions"} <= set(rows[0])
    admin_row = next(r for r in rows if r["username"] == "admin")
    assert admin_row["sessions"] == 1 and admin_row["last_login"] != "never"

    app_user.find(marker="new-user").click()
    await app_user.should_see("New user")
    app_user.find(marker="new-username").type("nina")
    app_user.find(marker="new-display-name").type("Nina N")
    app_user.find(marker="new-email").type("nina@example.org")
    app_user.find(marker="new-role").click()
    app_user.find("Operator").click()
    app_user.find(marker="new-password").type("a long enough password")
    app_user.find(marker="create-user").click()
    await settle(lambda: accounts.users.find("nina") is not None)
    await settle(lambda: any(r["username"] == "nina" for r in table_rows(app_user)))
    nina = accounts.users.get_by_username("nina")
    assert (nina.role, nina.display_name, nina.email) == ("operator", "Nina N", "nina@example.org")
    assert accounts.audit.query(action="user.create", limit=1).events[0].actor_name == "admin"


async def test_a_weak_password_shows_the_policy_message_in_place(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/users")
    app_user.find(marker="new-user").click()
    app_user.find(marker="new-username").type("nina")
    app_user.find(marker="new-password").type("qwerty123456")
    app_user.find(marker="create-user").click()
    await app_user.should_see("password is too common: choose another", retries=50)
    assert accounts.users.find("nina") is None
    # The dialog stays open with the message; a short one is refused the same way.
    app_user.find(marker="new-password").clear().type("short")
    app_user.find(marker="create-user").click()
    await app_user.should_see("password too short", retries=50)
    assert accounts.users.find("nina") is None


async def test_admin_cannot_delete_or_disable_themselves(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/users")
    await app_user.should_see(marker="users-table")
    admin_id = accounts.users.get_by_username("admin").id or 0
    await row_action(app_user, "delete", admin_id)
    await app_user.should_see("you cannot delete your own account")
    await row_action(app_user, "toggle", admin_id)
    await app_user.should_see("you cannot disable your own account")
    assert accounts.users.get(admin_id).disabled is False
    assert accounts.users.find("admin") is not None


async def test_row_actions_delete_disable_role_password_and_sessions(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/users")
    await app_user.should_see(marker="users-table")
    victor_id = accounts.users.get_by_username("victor").id or 0
    olga_id = accounts.users.get_by_username("olga").id or 0
    cookie = accounts.auth.start_session(victor_id)

    await row_action(app_user, "sessions", victor_id)
    app_user.find(marker="confirm").click()
    await settle(lambda: accounts.auth.resolve_session(cookie) is None)

    await row_action(app_user, "role", victor_id)
    app_user.find(marker="role").click()
    app_user.find("Operator").click()
    app_user.find(marker="save-role").click()
    await settle(lambda: accounts.users.get(victor_id).role == "operator")

    await row_action(app_user, "password", victor_id)
    app_user.find(marker="reset-password").type("short")
    app_user.find(marker="save-password").click()
    await app_user.should_see("password too short", retries=50)
    app_user.find(marker="reset-password").clear().type("a reset passphrase")
    app_user.find(marker="save-password").click()
    await settle(lambda: verify_password(accounts.users.get(victor_id).password_hash, "a reset passphrase"))

    await row_action(app_user, "toggle", victor_id)
    app_user.find(marker="confirm").click()
    await settle(lambda: accounts.users.get(victor_id).disabled)
    await settle(
        lambda: next(r for r in table_rows(app_user) if r["id"] == victor_id)["status"] == "disabled"
    )
    await row_action(app_user, "toggle", victor_id)  # enabling needs no confirmation
    await settle(lambda: not accounts.users.get(victor_id).disabled)

    await row_action(app_user, "delete", olga_id)
    app_user.find(marker="confirm").click()
    await settle(lambda: accounts.users.find("olga") is None)
    await settle(lambda: all(r["username"] != "olga" for r in table_rows(app_user)))

    # The last admin is guarded in the UI too: the service's refusal is shown.
    admin_id = accounts.users.get_by_username("admin").id or 0
    await row_action(app_user, "role", admin_id)
    app_user.find(marker="role").click()
    app_user.find("Viewer").click()
    app_user.find(marker="save-role").click()
    await app_user.should_see("last enabled admin", retries=50)
    assert accounts.users.get(admin_id).role == "admin"


async def test_viewer_is_refused_the_users_page(app_user: User) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    response = await app_user.http_client.get("/admin/users")
    assert response.status_code == 403
