"""Where a search hit leads: the user hit's link opens /admin/users filtered to that account (the page's
`user` query parameter), through NiceGUI's simulated user against the real pages and services."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD, sign_in
from tests.test_search import eventually


async def test_a_user_hit_opens_the_users_page_filtered_to_that_user(
    app_user: User, accounts: Services
) -> None:
    async def user_hit() -> str | None:
        results = await accounts.search.search(PANEL, "olga", type="user")
        return results.hits[0].url if results.hits else None

    url = await eventually(user_hit, what="the user hit")
    olga = accounts.users.get_by_username("olga")
    assert url == f"/admin/users?user={olga.id}"
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path=url)
    await app_user.should_see(marker="users-table")
    (box,) = app_user.find(marker="search").elements
    (table,) = app_user.find(marker="users-table").elements
    assert isinstance(box, ui.input) and isinstance(table, ui.table)
    assert box.value == "olga" and table.filter == "olga"

    await app_user.open("/admin/users?user=987654")
    await app_user.should_see("No user with id 987654")
