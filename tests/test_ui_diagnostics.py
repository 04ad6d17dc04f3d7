"""/admin/diagnostics (admins only) and the frame's health banner, through NiceGUI's simulated user on the
real pages: the jobs table follows the supervisor live, the banner tells operators and admins what
stopped working in plain words and goes away by itself when the job recovers."""

from __future__ import annotations

import errno
import platform
from typing import Any

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, nav_labels, sign_in
from tests.test_recovery import until
from tests.test_ui_no_loop_reads import LoopRead, assert_none, loop_reads  # noqa: F401  (a fixture)

FULL = OSError(errno.ENOSPC, "No space left on device: '/srv/nox/data/nox.db-wal'")


def job_rows(user: User) -> dict[str, dict[str, Any]]:
    [table] = user.find(marker="diagnostics-jobs").elements
    assert isinstance(table, ui.table)
    return {row["name"]: row for row in table.rows}


def texts(user: User, marker: str) -> list[str]:
    [box] = user.find(marker=marker).elements
    return [element.text for element in box.descendants() if isinstance(element, ui.label)]


async def test_an_admin_sees_jobs_storage_and_versions_and_the_jobs_follow_live(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/diagnostics")
    assert "Diagnostics" in nav_labels(app_user)
    await app_user.should_see(marker="diagnostics-database", retries=200)
    await until(lambda: {"sampler", "delivery", "plugins"} <= set(job_rows(app_user)))
    assert job_rows(app_user)["sampler"]["status"] == "running"
    database = texts(app_user, "diagnostics-database")
    assert "Database size" in database and "Free space in the data folder" in database
    versions = texts(app_user, "diagnostics-versions")
    assert platform.python_version() in versions and "NiceGUI" in versions and "SQLite" in versions
    if hasattr(accounts, "cache"):
        await app_user.should_see(marker="diagnostics-cache-table")
    if hasattr(accounts, "search"):
        await app_user.should_see(marker="diagnostics-search-status")

    accounts.supervisor.report("history", FULL)  # no refresh: the table and the banner follow by themselves
    await until(lambda: job_rows(app_user).get("history", {}).get("status") == "failing")
    row = job_rows(app_user)["history"]
    assert row["last_error"].startswith("OSError: [Errno 28] No space left on device")  # admins read it
    await app_user.should_see("History is not being saved: the disk is full")
    await app_user.should_see(marker="health-history")

    accounts.supervisor.report("history", None)
    await until(lambda: job_rows(app_user)["history"]["status"] == "running")
    await app_user.should_not_see(marker="health-history")

    app_user.find(marker="diagnostics-refresh").click()
    await app_user.should_see("Updated", retries=200)


async def test_a_viewer_is_refused_the_page_and_sees_no_banner(app_user: User, accounts: Services) -> None:
    accounts.supervisor.report("history", FULL)
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    assert "Diagnostics" not in nav_labels(app_user)
    await app_user.should_not_see(marker="health-banner")
    refused = await app_user.http_client.get("/admin/diagnostics")
    assert refused.status_code == 403
    assert "403 · Access denied" in refused.text and "Background jobs" not in refused.text
    assert accounts.audit.query(action="access.denied").events[0].target_id == "/admin/diagnostics"


async def test_an_operator_reads_the_banner_without_the_error_text_until_the_job_recovers(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD)
    await app_user.should_not_see(marker="health-history")
    accounts.supervisor.report("history", FULL)  # live, on the open dashboard
    await app_user.should_see("History is not being saved: the disk is full")
    [line] = app_user.find(marker="health-history").elements
    assert isinstance(line, ui.label)
    assert "/srv/nox" not in line.text and "Errno" not in line.text
    assert "(since " in line.text and "retries by itself" in line.text
    await app_user.should_not_see("Diagnostics")  # the link is for admins

    accounts.supervisor.report("history", None)
    await app_user.should_not_see(marker="health-history")


async def test_the_page_reads_nothing_on_the_event_loop(
    app_user: User,
    accounts: Services,
    loop_reads: list[LoopRead],  # noqa: F811  (the fixture imported above)
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/diagnostics")
    await app_user.should_see(marker="diagnostics-database", retries=200)
    app_user.find(marker="diagnostics-refresh").click()
    await app_user.should_see("Updated", retries=200)
    assert_none(loop_reads)
