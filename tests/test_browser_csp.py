"""Every screen works under the Content-Security-Policy, in the system Chromium against `nox-ui serve`.

One server and one browser for all screens: first-run setup, sign-in, every page of the menu, a dialog
and a menu popup; no CSP violation may be reported (neither a `securitypolicyviolation` event nor a
console message), and the live dashboard must keep updating over its websocket.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.test_browser import (  # noqa: F401  (fixtures, used by name)
    _create_admin_via_setup,
    _live_texts,
    _path_is,
    _sign_in,
    browser,
    context,
    page,
    server,
)

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

    from tests.test_browser import Server

pytestmark = pytest.mark.browser

# Reports each violation to the test, whichever page of the visit it happens on.
REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => window.noxCspViolation(
  `${location.pathname}: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} ${e.sample || ''}`));
"""

SCREENS = [
    ("/", "Dashboard"),
    ("/processes", "Processes"),
    ("/history", "History"),
    ("/alerts", "Alerts"),
    ("/profile", "Profile"),
    ("/admin/users", "Users"),
    ("/admin/settings", "Settings"),
    ("/admin/audit", "Audit log"),
]
LIVE_DEADLINE_S = 60.0  # a bound on a hang: a busy machine samples late


def test_every_screen_works_under_the_policy_without_a_violation(
    page: Page,  # noqa: F811  (the fixture imported above)
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect  # the browser fixture has made sure it is installed

    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"console: {message.text}")

    def report(_source: Any, text: str) -> None:
        violations.append(text)

    page.expose_binding("noxCspViolation", report)
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", on_console)

    _create_admin_via_setup(page, server)  # /setup, then /login?created=1
    _sign_in(page)
    expect(page).to_have_url(_path_is(server, "/"))

    # The live dashboard updates under the policy: Vue renders (eval), the frame's inline script (nonce)
    # marks the websocket as up (connect-src), and the numbers change.
    connection = page.locator("#nox-conn")
    expect(connection).to_have_attribute("data-state", "up")
    first = _live_texts(page)
    deadline = time.monotonic() + LIVE_DEADLINE_S
    while _live_texts(page) == first and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert _live_texts(page) != first, "the dashboard did not update live"
    expect(page.locator(".nox-chart-cpu canvas")).to_be_visible()

    for path, title in SCREENS:
        page.goto(path)
        expect(page).to_have_url(_path_is(server, path))
        expect(page.get_by_role("banner").get_by_text(title, exact=True)).to_be_visible()
        expect(connection).to_have_attribute("data-state", "up")

    # A dialog with a select popup
    page.goto("/admin/users")
    page.get_by_role("button", name="New user").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Role").click()
    page.get_by_role("option", name="Operator").click()
    expect(dialog.get_by_label("Role")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Sign-out submits a form (form-action 'self') and lands on the sign-in page, seen anonymously.
    page.get_by_role("button", name="User menu").click()
    page.get_by_text("Sign out", exact=True).click()
    expect(page).to_have_url(_path_is(server, "/login"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    assert violations == [], "\n".join(violations)
