"""/admin/plugins and the plugins' sections of /admin/settings, through NiceGUI's simulated user against
the real pages and the real plugin host: folder plugins written into DATA_DIR/plugins are listed with
their status, enabled and disabled behind a confirmation (the menu follows), a failing one shows its
traceback, a viewer gets 403, and a plugin's settings are validated in place and saved."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.plugins import discovery
from nox_ui.plugins.host import PluginStatus
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, nav_labels, sign_in
from tests.test_ui_no_loop_reads import LoopRead, assert_none, loop_reads  # noqa: F401  (a fixture)

WAIT = 200  # polls of 0.1 s (should_see) or 0.05 s (settle); each returns as soon as it holds


def unique(prefix: str) -> str:
    """A plugin name of its own per test: its module, menu entries and kinds live in one process."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_plugin(services: Services, name: str, body: str, *, panel: str = ">=0.1") -> Path:
    """A single-file plugin in DATA_DIR/plugins, safe as discovery wants it: only its owner may write."""
    folder = services.config.data_dir / "plugins"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{name.replace('-', '_')}.py"
    header = (
        f'PLUGIN = {{"name": "{name}", "version": "1.2.3", "panel": "{panel}", "author": "Fixture Co"}}\n'
    )
    path.write_text(header + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o600)
    return path


def menu_plugin(name: str) -> str:
    return f"""
        from nox_ui.plugin import NavItem, hookimpl

        @hookimpl
        def nav_items(ctx):
            return [NavItem("Fixture page", "/plugins/{name}/")]
        """


SETTINGS_PLUGIN = """
    from pydantic import BaseModel, ConfigDict, Field

    from nox_ui.plugin import hookimpl


    class FixtureSettings(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        low_battery_percent: int = Field(20, ge=1, le=99, description="Warn below this charge.")
        device_label: str = Field("UPS", min_length=1, max_length=20, description="Shown in the card.")


    @hookimpl
    def settings_schema(ctx):
        return FixtureSettings
    """


async def settle(predicate: Callable[[], Any], retries: int = 2 * WAIT) -> None:
    for _ in range(retries):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def element(user: User, marker: str) -> Any:
    return next(iter(user.find(marker=marker).elements))


def found(user: User, marker: str) -> set[ui.element]:
    """The elements with this marker on the page now (none is no error)."""
    try:
        return user.find(marker=marker).elements
    except AssertionError:
        return set()


def status_of(user: User, name: str) -> str:
    """The text of a plugin's status badge as the page shows it now ('' while it is redrawn)."""
    badges = found(user, f"plugin-status-{name}")
    return str(next(iter(badges)).text) if badges else ""  # type: ignore[attr-defined]


async def open_plugins_page(user: User, *, rescan: bool = True) -> None:
    await user.open("/admin/plugins")
    await user.should_see(marker="plugins-rescan", retries=WAIT)
    if rescan:  # the plugin was written after the panel looked: what the Rescan button is for
        user.find(marker="plugins-rescan").click()
        await user.should_see("Looked for plugins again:", retries=WAIT)


async def confirm(user: User, question: str) -> None:
    await user.should_see(question, retries=WAIT)
    user.find(marker="plugin-confirm").click()


async def test_an_admin_enables_and_disables_a_folder_plugin_and_the_menu_follows(
    app_user: User, accounts: Services
) -> None:
    name = unique("menu")
    write_plugin(accounts, name, menu_plugin(name))
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)

    await app_user.should_see(marker=f"plugin-{name}", retries=WAIT)
    assert status_of(app_user, name) == "disabled"
    badge = element(app_user, f"plugin-status-{name}")
    assert isinstance(badge, ui.badge) and badge.props["color"] == "grey"
    await app_user.should_see("by Fixture Co")
    assert "Fixture page" not in nav_labels(app_user)
    assert not found(app_user, f"plugin-disable-{name}")

    app_user.find(marker=f"plugin-enable-{name}").click()
    await confirm(app_user, f"Enable plugin {name}?")
    await settle(lambda: status_of(app_user, name) == "enabled")
    await app_user.should_see(f"Plugin {name} enabled.", retries=WAIT)
    assert element(app_user, f"plugin-status-{name}").props["color"] == "positive"
    assert accounts.plugins.is_active(name)
    event = accounts.audit.query(action="plugin.enable", limit=1).events[0]
    assert event.actor_name == "admin" and event.target_label == name

    await app_user.open("/admin/plugins")
    await app_user.should_see(marker=f"plugin-{name}", retries=WAIT)
    assert "Fixture page" in nav_labels(app_user)

    app_user.find(marker=f"plugin-disable-{name}").click()
    await confirm(app_user, f"Disable {name}?")
    await settle(lambda: status_of(app_user, name) == "disabled")
    assert not accounts.plugins.is_active(name)
    assert accounts.audit.query(action="plugin.disable", limit=1).events[0].target_label == name
    await app_user.open("/admin/plugins")
    await app_user.should_see(marker=f"plugin-{name}", retries=WAIT)
    assert "Fixture page" not in nav_labels(app_user)


async def test_cancelling_the_confirmation_changes_nothing(app_user: User, accounts: Services) -> None:
    name = unique("cancel")
    write_plugin(accounts, name, menu_plugin(name))
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)
    app_user.find(marker=f"plugin-enable-{name}").click()
    await app_user.should_see("Its code runs inside the panel with the panel's rights.", retries=WAIT)
    app_user.find("Cancel").click()
    await asyncio.sleep(0.2)
    assert status_of(app_user, name) == "disabled"
    assert not accounts.plugin_catalog.entry(name).enabled


async def test_the_list_follows_a_change_made_elsewhere(app_user: User, accounts: Services) -> None:
    """Another admin's tab (or the CLI, through the host's watch) enables it: this page redraws."""
    name = unique("live")
    write_plugin(accounts, name, menu_plugin(name))
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)
    assert status_of(app_user, name) == "disabled"
    await accounts.plugins.enable(PANEL, name)
    await settle(lambda: status_of(app_user, name) == "enabled")


async def test_a_viewer_gets_the_403_page(app_user: User, accounts: Services) -> None:
    name = unique("hidden")
    write_plugin(accounts, name, menu_plugin(name))
    accounts.plugin_catalog.found(refresh=True)
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    assert "Plugins" not in nav_labels(app_user)
    response = await app_user.http_client.get("/admin/plugins")
    assert response.status_code == 403
    assert "403 · Access denied" in response.text
    assert name not in response.text and "plugins-rescan" not in response.text
    denied = accounts.audit.query(action="access.denied", limit=1).events[0]
    assert denied.actor_name == "victor" and "/admin/plugins" in denied.target_label + denied.target_id


async def test_a_plugin_that_raises_on_import_is_failed_with_its_traceback(
    app_user: User, accounts: Services
) -> None:
    name = unique("broken")
    token = uuid.uuid4().hex
    write_plugin(accounts, name, f'raise RuntimeError("boom {token}")\n')
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)

    app_user.find(marker=f"plugin-enable-{name}").click()
    await confirm(app_user, f"Enable plugin {name}?")
    await settle(lambda: status_of(app_user, name) == "failed")
    assert element(app_user, f"plugin-status-{name}").props["color"] == "negative"
    await app_user.should_see(f"Plugin {name} failed: import: RuntimeError: boom {token}", retries=WAIT)
    await app_user.should_see(marker=f"plugin-reason-{name}", content=f"boom {token}")
    details = element(app_user, f"plugin-error-{name}")
    assert isinstance(details, ui.expansion) and details.text == "Error details"
    traceback = element(app_user, f"plugin-traceback-{name}")
    assert "Traceback (most recent call last)" in traceback.text
    assert f"RuntimeError: boom {token}" in traceback.text
    assert "font-mono" in traceback.classes
    # still enabled as a decision: it can be tried again or disabled
    assert found(app_user, f"plugin-enable-{name}")
    app_user.find(marker=f"plugin-disable-{name}").click()
    await confirm(app_user, f"Disable {name}?")
    await settle(lambda: status_of(app_user, name) == "disabled")
    assert not found(app_user, f"plugin-traceback-{name}")


async def test_an_incompatible_plugin_offers_no_enable(app_user: User, accounts: Services) -> None:
    name = unique("future")
    write_plugin(accounts, name, menu_plugin(name), panel=">=99")
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)
    await settle(lambda: status_of(app_user, name) == "incompatible")
    assert element(app_user, f"plugin-status-{name}").props["color"] == "orange"
    await app_user.should_see(marker=f"plugin-reason-{name}", content="it supports Nox UI >=99")
    button = element(app_user, f"plugin-enable-{name}")
    assert isinstance(button, ui.button) and not button.enabled
    app_user.find(marker=f"plugin-enable-{name}").click()  # a disabled button does nothing
    await asyncio.sleep(0.2)
    await app_user.should_not_see(f"Enable plugin {name}?")


async def test_no_plugins_found_says_how_to_install_one(
    app_user: User, accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery, "_from_entry_points", list)  # whatever this venv has installed
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)
    await app_user.should_see(marker="plugins-empty", retries=WAIT)
    await app_user.should_see("No plugins found. Install one with pip (entry point group nox_ui.plugins)")


async def test_the_plugins_page_reads_nothing_on_the_loop(
    app_user: User,
    accounts: Services,
    loop_reads: list[LoopRead],  # noqa: F811  (the fixture imported above)
) -> None:
    name = unique("quiet")
    write_plugin(accounts, name, menu_plugin(name))
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user)
    app_user.find(marker=f"plugin-enable-{name}").click()
    await confirm(app_user, f"Enable plugin {name}?")
    await settle(lambda: status_of(app_user, name) == "enabled")
    app_user.find(marker=f"plugin-disable-{name}").click()
    await confirm(app_user, f"Disable {name}?")
    await settle(lambda: status_of(app_user, name) == "disabled")
    assert_none(loop_reads)


# -- a plugin's settings on /admin/settings -----------------------------------------------------------


async def test_a_plugins_settings_are_validated_in_place_and_saved(
    app_user: User, accounts: Services
) -> None:
    name = unique("tuned")
    write_plugin(accounts, name, SETTINGS_PLUGIN)
    accounts.plugin_catalog.found(refresh=True)
    view = await accounts.plugins.enable(PANEL, name)
    assert view.status is PluginStatus.ENABLED and view.has_settings

    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/plugins")
    await open_plugins_page(app_user, rescan=False)
    link = element(app_user, f"plugin-settings-{name}")
    assert isinstance(link, ui.link) and link.props["href"] == f"/admin/settings#plugin-{name}"

    await app_user.open("/admin/settings")
    await app_user.should_see(f"Plugin: {name}", retries=WAIT)
    await app_user.should_see("Warn below this charge. Default: 20.")
    section = element(app_user, f"plugin-group-{name}")
    assert section.props["id"] == f"plugin-{name}"
    save = element(app_user, f"plugin-settings-save-{name}")
    assert isinstance(save, ui.button) and not save.enabled

    # a bad value: shown at its input, refused on save (and notified), nothing stored
    threshold = element(app_user, f"plugin-setting-{name}-low_battery_percent")
    app_user.find(marker=f"plugin-setting-{name}-low_battery_percent").clear().type("500")
    await settle(lambda: getattr(threshold, "error", None))
    assert "less than or equal to 99" in str(threshold.error)
    await app_user.should_see(marker=f"plugin-settings-status-{name}", content="1 invalid value(s)")
    app_user.find(marker=f"plugin-settings-save-{name}").click()
    await app_user.should_see("low_battery_percent: Input should be less than or equal to 99", retries=WAIT)
    assert "less than or equal to 99" in str(threshold.error)
    assert accounts.plugin_settings.values(name)["low_battery_percent"] == 20
    assert accounts.audit.query(action="plugin.settings.update", limit=1).total == 0
    # the panel's own settings saw none of it
    await app_user.should_see(marker="settings-status", content="No unsaved changes")

    # a good value: saved, in effect, audited
    app_user.find(marker=f"plugin-setting-{name}-low_battery_percent").clear().type("42")
    app_user.find(marker=f"plugin-setting-{name}-device_label").clear().type("Rack UPS")
    await settle(lambda: threshold.error is None)
    await app_user.should_see(marker=f"plugin-settings-status-{name}", content="2 unsaved change(s)")
    app_user.find(marker=f"plugin-settings-save-{name}").click()
    await settle(lambda: accounts.plugin_settings.values(name)["low_battery_percent"] == 42)
    assert accounts.plugin_settings.values(name)["device_label"] == "Rack UPS"
    await app_user.should_see(f"Saved 2 setting(s) of {name}; in effect now.", retries=WAIT)
    await app_user.should_see(marker=f"plugin-settings-status-{name}", content="No unsaved changes")
    event = accounts.audit.query(action="plugin.settings.update", limit=1).events[0]
    assert event.actor_name == "admin" and event.target_label == name


async def test_a_plugins_section_follows_it_being_disabled(app_user: User, accounts: Services) -> None:
    name = unique("fleeting")
    write_plugin(accounts, name, SETTINGS_PLUGIN)
    accounts.plugin_catalog.found(refresh=True)
    await accounts.plugins.enable(PANEL, name)
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    await app_user.open("/admin/settings")
    await app_user.should_see(f"Plugin: {name}", retries=WAIT)
    await accounts.plugins.disable(PANEL, name)
    await app_user.should_not_see(f"Plugin: {name}", retries=WAIT)
    await app_user.should_see(marker="setting-site_name")  # the panel's own settings stay
