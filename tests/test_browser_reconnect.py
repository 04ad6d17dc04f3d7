"""A real browser and a real `nox-ui serve` that goes away: the dashboard shows "Reconnecting…" at the top
while the server is down (and not NiceGUI's own popup as well), and once the server is back on the same
port and data dir the banner goes and the numbers move again, still signed in, with nobody reloading.
Chromium and the server helpers are those of tests/test_browser.py."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.test_browser import (
    TIMEOUT_MS,
    USERNAME,
    _create_admin_via_setup,
    _live_texts,
    _path_is,
    _sign_in,
    _until_distinct,
    _wait_until_serving,
    browser,  # noqa: F401  (the module-scoped Chromium fixture)
    new_server,
    start_serve,
    stop_serve,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

# Without Playwright the `browser` fixture skips (or fails under NOX_REQUIRE_BROWSER=1) before `expect` is used.
with contextlib.suppress(ImportError):
    from playwright.sync_api import expect


def test_the_dashboard_says_reconnecting_while_the_server_is_down_and_comes_back_live_by_itself(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    with new_server(tmp_path) as server:
        context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        restarted = None
        try:
            page = context.new_page()
            _create_admin_via_setup(page, server)
            _sign_in(page)
            expect(page).to_have_url(_path_is(server, "/"))
            expect(page.locator(".nox-metric-card").first).to_be_visible()
            _until_distinct(page, {_live_texts(page)}, 2, "the dashboard did not update live")
            banner = page.get_by_role("status").filter(has_text="Reconnecting…")
            expect(banner).to_have_count(0)

            # The server goes away (SIGTERM, as systemd or docker stop would send).
            stop_serve(server.process)
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("Live data resumes by itself.")
            expect(page.locator("#nox-conn")).to_have_attribute("data-state", "down")
            expect(page.locator("#popup")).to_be_hidden()  # NiceGUI's own popup is not shown as well

            # Back on the same port and data dir: NiceGUI reloads the page by itself once it reconnects.
            port = urlsplit(server.base_url).port
            assert port is not None
            data_dir = tmp_path / "data"
            restarted = start_serve(data_dir, port, server.log)
            _wait_until_serving(restarted, server.log, server.base_url, setup_url=False)
            expect(page.get_by_text("Reconnecting…")).to_have_count(0, timeout=30_000)
            expect(page.locator("#nox-conn")).to_have_attribute("data-state", "up")
            expect(page).to_have_url(_path_is(server, "/"))
            expect(page.get_by_role("button", name="User menu")).to_contain_text(USERNAME)
            expect(page.locator(".nox-metric-card").first).to_be_visible()
            _until_distinct(page, {_live_texts(page)}, 3, "the dashboard did not update after the restart")
        finally:
            context.close()
            if restarted is not None:
                stop_serve(restarted)
