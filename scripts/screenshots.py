"""Take the documentation screenshots with the system Chromium against a throw-away server.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Starts `nox-ui serve` on a free port with a temporary data dir, creates the first administrator
through the printed setup URL, signs in, and writes:

    dashboard-light.png   1280x800, signed in, light mode
    dashboard-dark.png    1280x800, signed in, after "Toggle dark mode"
    login.png             1280x800, anonymous sign-in screen
    dashboard-phone.png   390x844, signed in, light mode
    users.png, settings.png, settings-diff.png, audit.png
                          1280x800, the admin screens, light mode
    alerts.png, alert-rule.png, notifier.png
                          1280x800, a firing alert; the rule editor with its preview; the notifier
                          form (email)
    plugins.png, example-plugin.png
                          1280x800, /admin/plugins with the example plugin enabled (it must be
                          installed: pip install -e examples/nox-ui-example-plugin); its page
    search.png, search-palette.png
                          1280x800, /search with results of several types; the Ctrl+K palette
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
USERNAME = "ada"
PASSWORD = "analytical-engine-1843"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(root: Path) -> Iterator[tuple[str, str]]:
    """Yield (base_url, setup_url) of `nox-ui serve` on a fresh data dir; stop it afterwards."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "PYTEST_", "NICEGUI_"))}
    env.update(NOX_DATA_DIR=str(root / "data"), NOX_HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nox_ui", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        setup_url = None
        while setup_url is None:
            if process.poll() is not None:
                raise SystemExit(f"nox-ui serve exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"nox-ui serve did not come up within 30 s:\n{log.read_text()}")
            # not listening yet: try again until the deadline
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                with urllib.request.urlopen(base_url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        match = re.search(r"(http://\S+/setup\?token=\S+)", log.read_text())
                        setup_url = match.group(1) if match else None
            time.sleep(0.1)
        yield base_url, setup_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def settle(page: Page) -> None:
    """Wait until the page is live (socket connected) and fonts and transitions are done."""
    page.wait_for_load_state("networkidle")
    if page.locator("#nox-conn").count():
        expect(page.locator("#nox-conn")).to_have_attribute("data-state", "up")
    page.evaluate("document.fonts.ready")
    page.wait_for_timeout(600)  # Quasar drawer/notify transitions


def create_admin(page: Page, setup_url: str) -> None:
    page.goto(setup_url)
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator").click()
    expect(page).to_have_url(re.compile(r"/login\?created=1$"))


def sign_in(page: Page) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password", exact=True).press("Enter")
    expect(page.locator(".nox-metric-card").first).to_be_visible()


def take(browser: Browser, base_url: str, setup_url: str, out: Path, warmup: float) -> list[Path]:
    written: list[Path] = []

    def shot(page: Page, name: str, *, full_page: bool = False) -> None:
        settle(page)
        page.mouse.move(0, page.viewport_size["height"] - 1 if page.viewport_size else 0)  # no hover tooltip
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        written.append(path)

    def screens(page: Page, mode: str) -> None:
        page.goto("/")
        expect(page.locator(".nox-metric-card").first).to_be_visible()
        page.set_viewport_size({"width": DESKTOP["width"], "height": 1280})  # the whole dashboard, drawer too
        shot(page, f"dashboard-{mode}")
        page.set_viewport_size(DESKTOP)
        page.goto("/history")
        expect(page.get_by_text("tier:")).to_be_visible()
        shot(page, f"history-{mode}")
        page.goto("/processes")
        expect(page.locator(".q-table tbody tr").first).to_be_visible()
        page.wait_for_timeout(2500)  # a second listing, so CPU % is measured
        shot(page, f"processes-{mode}")

    def alert_screens(page: Page) -> None:
        page.goto("/alerts")
        page.get_by_role("button", name="New rule").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Name").fill("CPU busy")
        dialog.get_by_label("Metric").fill("cpu.percent")
        page.get_by_role("option", name="cpu.percent", exact=True).click()
        dialog.get_by_label("Operator").click()
        page.get_by_role("option", name=">=", exact=True).click()
        dialog.get_by_label("Threshold").fill("1")
        dialog.get_by_label("For (seconds)").fill("5")
        dialog.get_by_label("Description / runbook").fill("Check /processes for the busiest process.")
        dialog.get_by_role("button", name="Preview last 24 h").click()
        expect(dialog.get_by_text(re.compile("would have fired"))).to_be_visible()
        shot(page, "alert-rule")
        dialog.get_by_role("button", name="Save").click()
        firing = page.get_by_role("row").filter(has_text="CPU busy").filter(has_text="firing")
        expect(firing).to_be_visible(timeout=20_000)
        expect(page.locator(".q-notification")).to_have_count(0, timeout=15_000)
        shot(page, "alerts")
        # The notifier form is built from the kinds' registry: show the email kind's fields.
        page.get_by_role("tab", name="Notifiers").click()
        page.get_by_role("button", name="New notifier").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Name").fill("On-call mail")
        dialog.get_by_label("Kind").click()
        page.get_by_role("option", name="Email").click()
        shot(page, "notifier")
        dialog.get_by_role("button", name="Cancel").click()

    def admin_screens(page: Page) -> None:
        page.goto("/admin/users")
        for username, role in (("olga", "Operator"), ("victor", "Viewer")):
            page.get_by_role("button", name="New user").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_label("Username").fill(username)
            dialog.get_by_label("Display name").fill(username.capitalize())
            dialog.get_by_label("Role").click()
            page.get_by_role("option", name=role).click()
            dialog.get_by_label("Initial password").fill(f"{username} sample passphrase")
            dialog.get_by_role("button", name="Create").click()
            expect(page.get_by_role("cell", name=username, exact=True)).to_be_visible()
        expect(page.locator(".q-notification")).to_have_count(0, timeout=15_000)  # toasts gone
        shot(page, "users")
        page.goto("/admin/settings")
        expect(page.get_by_text("Metrics & retention")).to_be_visible()
        shot(page, "settings")
        page.get_by_label("Session idle minutes").fill("60")
        page.get_by_label("Backup keep").fill("14")
        page.get_by_role("button", name="Review and save").click()
        expect(page.get_by_text("Review changes")).to_be_visible()
        shot(page, "settings-diff")
        page.get_by_role("dialog").get_by_role("button", name="Save").click()
        expect(page.get_by_text("No unsaved changes")).to_be_visible()
        page.goto("/admin/audit")
        expect(page.get_by_role("cell", name="user.create", exact=True).first).to_be_visible()
        shot(page, "audit")
        page.goto("/admin/diagnostics")
        expect(page.get_by_text("Background jobs")).to_be_visible()
        expect(page.get_by_text("Search index")).to_be_visible()
        shot(page, "diagnostics", full_page=True)

    def search_screens(page: Page) -> None:
        # After admin_screens: the new accounts and the audit events of their creation are indexed.
        page.goto("/search?q=olga OR victor")
        expect(page.get_by_role("link", name="Olga", exact=True).first).to_be_visible()
        shot(page, "search")
        page.goto("/")
        expect(page.locator(".nox-metric-card").first).to_be_visible()
        page.keyboard.press("Control+k")
        field = page.get_by_role("combobox", name="Search")
        expect(field).to_be_focused()
        field.press_sequentially("victor")
        expect(page.get_by_role("option").filter(has_text="Victor").first).to_be_visible()
        field.press("ArrowDown")
        shot(page, "search-palette")
        page.keyboard.press("Escape")

    def plugin_screens(page: Page) -> None:
        page.goto("/admin/plugins")
        card = page.locator(".q-card").filter(has=page.get_by_text("example", exact=True))
        card.get_by_role("button", name="Enable").click()
        page.get_by_role("dialog").get_by_role("button", name="Enable").click()
        expect(card.get_by_text("enabled", exact=True)).to_be_visible()
        expect(page.locator(".q-notification")).to_have_count(0, timeout=15_000)
        shot(page, "plugins")
        page.locator(".nox-drawer").get_by_text("Example", exact=True).click()
        expect(page.get_by_text("Example wave", exact=True)).to_be_visible()
        page.wait_for_timeout(20_000)  # twenty points on the live chart
        shot(page, "example-plugin")
        page.goto("/admin/plugins")  # disabled again: the other screens show the panel as installed
        card = page.locator(".q-card").filter(has=page.get_by_text("example", exact=True))
        card.get_by_role("button", name="Disable").click()
        page.get_by_role("dialog").get_by_role("button", name="Disable").click()
        expect(card.get_by_text("disabled", exact=True)).to_be_visible()

    context = browser.new_context(base_url=base_url, viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    create_admin(page, setup_url)
    sign_in(page)
    page.wait_for_timeout(warmup * 1000)  # let the live charts and sparklines fill
    screens(page, "light")

    admin_screens(page)
    search_screens(page)
    plugin_screens(page)
    alert_screens(page)

    # Phone, while the stored preference is still light.
    phone = browser.new_context(
        base_url=base_url,
        viewport=PHONE,
        color_scheme="light",
        is_mobile=True,
        has_touch=True,
        storage_state=context.storage_state(),
    )
    phone_page = phone.new_page()
    phone_page.goto("/")
    expect(phone_page.locator(".nox-metric-card").first).to_be_visible()
    shot(phone_page, "dashboard-phone")
    phone.close()

    page.goto("/")
    page.get_by_role("button", name="Toggle dark mode").click()
    expect(page.locator("body")).to_have_class(re.compile(r"\bbody--dark\b"))
    screens(page, "dark")
    context.close()

    anonymous = browser.new_context(base_url=base_url, viewport=DESKTOP, color_scheme="light")
    login = anonymous.new_page()
    login.goto("/login")
    expect(login.get_by_role("button", name="Sign in")).to_be_visible()
    shot(login, "login")
    anonymous.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of live data before the shots")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        print(f"screenshots: error: no Chromium at {args.chromium}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=15_000)
    with (
        tempfile.TemporaryDirectory(prefix="nox-shots-") as tmp,
        running_server(Path(tmp)) as (base_url, setup_url),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for path in take(browser, base_url, setup_url, args.out, args.warmup):
                print(
                    f"wrote {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}"
                )
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
