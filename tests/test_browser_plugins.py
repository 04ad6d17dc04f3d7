"""A real browser and a real `nox-ui serve`: an admin enables the example plugin on /admin/plugins, opens
its page from the menu, watches its live chart move, then disables it from another tab: the menu
entry leaves the page that is still open, and that tab leaves the plugin's page for the dashboard. Chromium and the server are those of tests/test_browser.py."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.test_browser import (
    LIVE_DEADLINE,
    TIMEOUT_MS,
    _create_admin_via_setup,
    _path_is,
    _sign_in,
    browser,  # noqa: F401  (the module-scoped Chromium fixture)
    new_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser

# Without Playwright the `browser` fixture skips (or fails under NOX_REQUIRE_BROWSER=1) before `expect` is used.
with contextlib.suppress(ImportError):
    from playwright.sync_api import expect


def _plugin_card(page: Page, name: str) -> Locator:
    return page.locator(".q-card").filter(has=page.get_by_text(name, exact=True))


def _confirm(page: Page, button: str) -> None:
    page.get_by_role("dialog").get_by_role("button", name=button).click()


def test_an_admin_enables_the_example_plugin_sees_its_live_chart_and_disables_it_live(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    with new_server(tmp_path) as server:
        context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            _create_admin_via_setup(page, server)
            _sign_in(page)
            expect(page).to_have_url(_path_is(server, "/"))

            page.goto("/admin/plugins")
            card = _plugin_card(page, "example")
            expect(card.get_by_text("disabled", exact=True)).to_be_visible()
            card.get_by_role("button", name="Enable").click()
            _confirm(page, "Enable")
            expect(card.get_by_text("enabled", exact=True)).to_be_visible()

            # The menu of this open page gained the plugin's entry; it leads to the plugin's page.
            menu = page.locator(".nox-drawer")
            menu.get_by_text("Example", exact=True).click()
            expect(page).to_have_url(_path_is(server, "/plugins/example/"))
            expect(page.get_by_text("Example wave", exact=True)).to_be_visible()

            # The chart moves: its picture changes as the plugin's metric arrives, sample after sample.
            canvas = page.locator(".nicegui-echart canvas").first
            expect(canvas).to_be_visible()
            pictures: set[str] = set()
            deadline = time.monotonic() + LIVE_DEADLINE
            while len(pictures) < 3 and time.monotonic() < deadline:
                pictures.add(canvas.evaluate("c => c.toDataURL()"))
                page.wait_for_timeout(250)
            assert len(pictures) >= 3, "the example chart did not change within the deadline"

            # A dashboard open in a second tab shows the entry too; mark that page to prove it is not reloaded.
            dashboard = context.new_page()
            dashboard.goto("/")
            expect(dashboard.locator(".nox-drawer").get_by_text("Example", exact=True)).to_be_visible()
            dashboard.evaluate("window.noxStillTheSamePage = true")

            # A third tab disables it; both open pages lose the menu entry without a reload.
            admin_tab = context.new_page()
            admin_tab.goto("/admin/plugins")
            other_card = _plugin_card(admin_tab, "example")
            other_card.get_by_role("button", name="Disable").click()
            _confirm(admin_tab, "Disable")
            expect(other_card.get_by_text("disabled", exact=True)).to_be_visible()
            expect(dashboard.locator(".nox-drawer").get_by_text("Example", exact=True)).to_have_count(0)
            assert dashboard.evaluate("window.noxStillTheSamePage") is True
            expect(menu.get_by_text("Example", exact=True)).to_have_count(0)
            # The open tab of the plugin's page left it (its timer no longer calls the plugin).
            expect(page).to_have_url(_path_is(server, "/"))
            expect(menu.get_by_text("Dashboard", exact=True)).to_be_visible()

            # And its page is gone: 404 until it is enabled again.
            response = admin_tab.goto("/plugins/example/")
            assert response is not None and response.status == 404
        finally:
            context.close()
