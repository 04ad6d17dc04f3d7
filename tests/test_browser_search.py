"""Search in a real browser against `nox-ui serve`: an admin creates a user, presses Ctrl+K, types part of
the name, picks the user with the arrow keys and Enter opens them; `/` opens the palette too (but types a
slash inside a field), Esc closes it; a display name made of markup stays text in the palette and on
/search. Chromium, the server and the sign-in helpers are those of tests/test_browser.py."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.test_browser import (  # noqa: F401  (fixtures, used by name)
    USERNAME,
    _path_is,
    _sign_in,
    admin,
    browser,
    context,
    page,
    server,
)
from tests.test_browser_csp import REPORT_VIOLATIONS

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Locator, Page

    from tests.test_browser import Server

pytestmark = pytest.mark.browser

HOSTILE_NAME = '<img src=x onerror="window.noxXss=1">Mallory<script>window.noxXss=2</script>'
MAX_ARROWS = 12
INDEX_DEADLINE = 30.0  # seconds; a bound on a hang, the writer indexes within about a second


def _create_user(tab: Page, username: str, display_name: str) -> None:
    from playwright.sync_api import expect

    tab.get_by_role("button", name="New user").click()
    dialog = tab.get_by_role("dialog")
    dialog.get_by_label("Username").fill(username)
    dialog.get_by_label("Display name").fill(display_name)
    dialog.get_by_label("Initial password").fill(f"{username} long passphrase 42")
    dialog.get_by_role("button", name="Create").click()
    expect(tab.get_by_role("cell", name=username, exact=True)).to_be_visible()


def _watch_csp(tab: Page) -> list[str]:
    """Collect Content-Security-Policy violations of every page the tab opens (as test_browser_csp)."""
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"console: {message.text}")

    tab.expose_binding("noxCspViolation", lambda _source, text: violations.append(text))
    tab.add_init_script(REPORT_VIOLATIONS)
    tab.on("console", on_console)
    return violations


def _palette_input(tab: Page) -> Locator:
    return tab.get_by_role("combobox", name="Search")


def _type_until_found(field: Locator, text: str, wanted: Locator) -> None:
    """Type like a person; the index takes up to a second to hold what was just created, so when the
    result is not there yet, nudge the text (one more search, as a person retyping would) and look again."""
    from playwright.sync_api import expect

    field.press_sequentially(text)
    deadline = time.monotonic() + INDEX_DEADLINE
    while True:
        try:
            expect(wanted.first).to_be_visible(timeout=2_000)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"{text!r}: nothing found within {INDEX_DEADLINE} s"
            field.press("End")
            field.press("Space")
            field.press("Backspace")


def test_ctrl_k_finds_a_new_user_and_enter_opens_them(
    page: Page,  # noqa: F811  (the fixtures imported above)
    server: Server,  # noqa: F811
    admin: str,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    violations = _watch_csp(page)  # the palette's scripts must run under the page policy
    page.goto("/admin/users")
    _sign_in(page)
    expect(page).to_have_url(_path_is(server, "/admin/users"))
    _create_user(page, "grace", "Grace Hopper")

    page.keyboard.press("Control+k")
    field = _palette_input(page)
    expect(field).to_be_focused()
    # Results come as you type, grouped: the user and the audit event of their creation.
    _type_until_found(field, "hopper", page.get_by_role("option").filter(has_text="Grace Hopper"))
    expect(page.get_by_role("group", name="Users")).to_be_visible()
    selected = page.locator("[role=option][aria-selected=true]")
    expect(field).to_have_attribute("aria-activedescendant", re.compile(r"^c\d+$"))
    first = selected.get_attribute("id")
    field.press("ArrowDown")
    expect(selected).not_to_have_id(first or "")
    expect(field).to_have_attribute("aria-activedescendant", selected.get_attribute("id") or "")
    for _ in range(MAX_ARROWS):
        if selected.get_attribute("data-type") == "user":
            break
        field.press("ArrowDown")
    expect(selected).to_contain_text("Grace Hopper")
    field.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(server.url("/admin/users?user=")) + r"\d+$"))
    expect(page.get_by_role("cell", name="grace", exact=True)).to_be_visible()
    filter_field = page.get_by_placeholder("Search users")
    expect(filter_field).to_have_value("grace")  # the table opens filtered to that user
    expect(page.get_by_role("cell", name=USERNAME, exact=True)).to_have_count(0)

    # `/` opens the palette where nobody types; Esc closes it; inside a field `/` is just a slash.
    page.locator("body").click(position={"x": 600, "y": 700})
    page.keyboard.press("/")
    expect(_palette_input(page)).to_be_focused()
    page.keyboard.press("Escape")
    expect(_palette_input(page)).to_be_hidden()
    filter_field.fill("")
    page.keyboard.press("/")
    expect(filter_field).to_have_value("/")
    expect(_palette_input(page)).to_be_hidden()
    assert violations == [], "\n".join(violations)


def test_a_display_name_made_of_markup_stays_text(
    page: Page,  # noqa: F811
    server: Server,  # noqa: F811
    admin: str,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/users")
    _sign_in(page)
    _create_user(page, "mallory", HOSTILE_NAME)

    page.keyboard.press("Control+k")
    option = page.get_by_role("option").filter(has_text="Mallory")
    _type_until_found(_palette_input(page), "mallory", option)
    expect(option.filter(has_text="<img src=x").first).to_be_visible()  # shown as the text it is

    page.goto("/search?q=mallory")
    hit = page.get_by_role("link", name=HOSTILE_NAME)
    expect(hit).to_be_visible()
    for where in (page.locator(".nox-snippet"), page.locator(".nox-search-option")):
        assert where.locator("img, script").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("window.noxXss") is None
