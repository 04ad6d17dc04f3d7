"""/admin/settings through NiceGUI's simulated user: errors in place, a diff before saving, live effect and
import with a dry run."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD, sign_in


async def settle(predicate: object, retries: int = 60) -> None:
    for _ in range(retries):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def element(user: User, marker: str) -> ui.element:
    return next(iter(user.find(marker=marker).elements))


def diff_rows(user: User) -> list[dict[str, object]]:
    table = element(user, "settings-diff")
    assert isinstance(table, ui.table)
    return list(table.rows)


async def test_admin_sees_errors_in_place_then_a_diff_and_the_change_takes_effect_at_once(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    await app_user.should_see("Metrics & retention")
    await app_user.should_see("No unsaved changes")

    schedule = element(app_user, "setting-backup_schedule")
    app_user.find(marker="setting-backup_schedule").clear().type("every night")
    await settle(lambda: getattr(schedule, "error", None))
    assert "cron expression" in str(schedule.error)  # type: ignore[attr-defined]
    await app_user.should_see("1 invalid value(s): fix them to save")
    save = element(app_user, "review-save")
    assert isinstance(save, ui.button) and not save.enabled

    app_user.find(marker="setting-backup_schedule").clear().type("30 4 * * *")
    app_user.find(marker="setting-session_idle_minutes").clear().type("45")
    await settle(lambda: schedule.error is None)  # type: ignore[attr-defined]
    await app_user.should_see("2 unsaved change(s)")
    assert accounts.settings.current.session_idle_minutes == 480  # nothing saved yet

    app_user.find(marker="review-save").click()
    await app_user.should_see("Review changes")
    assert diff_rows(app_user) == [
        {"key": "session_idle_minutes", "old": "480", "new": "45"},
        {"key": "backup_schedule", "old": "0 3 * * *", "new": "30 4 * * *"},
    ]
    app_user.find(marker="confirm-save").click()
    await settle(lambda: accounts.settings.current.session_idle_minutes == 45)
    assert accounts.settings.current.backup_schedule == "30 4 * * *"
    assert accounts.auth.session_policy.idle == timedelta(minutes=45)
    event = accounts.audit.query(action="settings.update", limit=1).events[0]
    assert event.actor_name == "admin"
    assert json.loads(event.details)["session_idle_minutes"] == {"old": 480, "new": 45}


async def test_the_site_name_is_shown_in_the_frame(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    app_user.find(marker="setting-site_name").clear().type("Rack 7")
    app_user.find(marker="review-save").click()
    app_user.find(marker="confirm-save").click()
    await settle(lambda: accounts.settings.current.site_name == "Rack 7")
    await app_user.open("/")
    await app_user.should_see(marker="site-name", content="Rack 7")


async def test_a_secret_is_never_shown_and_can_be_replaced(app_user: User, accounts: Services) -> None:
    accounts.settings.update(PANEL, {"smtp_password": "old-mail-secret"})
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    await app_user.should_see("Currently set; leave empty to keep it.")
    password_input = element(app_user, "setting-smtp_password")
    assert getattr(password_input, "value", None) == ""
    app_user.find(marker="setting-smtp_password").type("new-mail-secret")
    app_user.find(marker="review-save").click()
    await app_user.should_see("Review changes")
    assert diff_rows(app_user) == [{"key": "smtp_password", "old": "set", "new": "set (new value)"}]
    app_user.find(marker="confirm-save").click()
    await settle(lambda: accounts.settings.current.smtp_password == "new-mail-secret")


async def test_import_shows_a_dry_run_diff_and_applies_only_when_confirmed(
    app_user: User, accounts: Services
) -> None:
    document = accounts.settings.export()
    document["settings"]["backup_keep"] = 21
    document["settings"]["site_name"] = "Imported"
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    app_user.find(marker="import").click()
    upload = element(app_user, "settings-upload")
    assert isinstance(upload, ui.upload)
    data = json.dumps(document).encode()
    await upload.handle_uploads([SmallFileUpload("s.json", "application/json", data)])
    await app_user.should_see("Import: 2 change(s) (dry run)")
    assert accounts.settings.current.backup_keep == 7
    app_user.find(marker="confirm-save").click()
    await settle(lambda: accounts.settings.current.backup_keep == 21)
    assert accounts.settings.current.site_name == "Imported"
    assert accounts.audit.query(action="settings.import", limit=1).total == 1


async def test_an_invalid_import_file_says_why_and_changes_nothing(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/settings")
    app_user.find(marker="import").click()
    upload = element(app_user, "settings-upload")
    assert isinstance(upload, ui.upload)
    bad = {"format": "nox-ui-settings/1", "settings": {"backup_keep": 0}}
    await upload.handle_uploads([SmallFileUpload("s.json", "application/json", json.dumps(bad).encode())])
    await app_user.should_see("Import refused, nothing changed: backup_keep:")
    await upload.handle_uploads([SmallFileUpload("s.json", "application/json", b"not json at all")])
    await app_user.should_see("That file is not JSON")
    assert accounts.settings.current.backup_keep == 7
