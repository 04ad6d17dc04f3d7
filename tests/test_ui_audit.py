"""The audit page through NiceGUI's simulated user: admins see, filter, export and verify; viewers get 403."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.testing import User
from sqlalchemy import text

from nox_ui.app import Services
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, nav_labels, sign_in, sign_out


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def table_of(user: User) -> ui.table:
    table = user.find(marker="audit-table").elements.pop()
    assert isinstance(table, ui.table)
    return table


async def test_admin_sees_sign_in_events_and_filters_them(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await sign_out(app_user)
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    assert "Audit log" in nav_labels(app_user)
    await app_user.open("/admin/audit")
    table = table_of(app_user)
    sign_ins = [(row["actor"], row["action"]) for row in table.rows if row["action"] == "auth.login.success"]
    assert sign_ins == [("admin (admin)", "auth.login.success"), ("victor (viewer)", "auth.login.success")]
    assert all(row["ip"] for row in table.rows)

    app_user.find(marker="audit-actor").type("victor")
    app_user.find(marker="audit-apply").click()
    await until(lambda: {row["actor"] for row in table_of(app_user).rows} == {"victor (viewer)"})

    app_user.find(marker="audit-actor").clear()
    app_user.find(marker="audit-search").type("olga")
    app_user.find(marker="audit-apply").click()
    await until(lambda: [row["action"] for row in table_of(app_user).rows] == ["user.create"])


async def test_admin_downloads_csv_and_jsonl_and_verifies_the_chain(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    await app_user.open("/admin/audit")

    app_user.find(marker="audit-csv").click()
    response = await app_user.download.next(timeout=5)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert "auth.login.success" in {row["action"] for row in rows}
    app_user.find(marker="audit-jsonl").click()
    response = await app_user.download.next(timeout=5)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["id"] for line in lines] == [int(row["id"]) for row in rows]

    app_user.find(marker="audit-verify").click()
    await app_user.should_see("Chain intact", retries=50)

    with accounts.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET details = '{}' WHERE id = 3"))
    app_user.find(marker="audit-verify").click()
    await app_user.should_see("Chain broken at event 3.", retries=50)


async def test_viewer_gets_403_on_the_audit_page_and_the_refusal_is_audited(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_not_see("Audit log")
    response = await app_user.http_client.get("/admin/audit")
    assert response.status_code == 403
    assert "Access denied" in response.text
    denied = accounts.audit.query(action="access.denied").events
    assert [(e.actor_name, e.outcome, e.target_type, e.target_id) for e in denied] == [
        ("victor", "denied", "page", "/admin/audit")
    ]


async def test_sign_out_is_audited(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await sign_out(app_user)
    await app_user.should_see(marker="sign-in", retries=30)
    event = accounts.audit.query(action="auth.logout").events[0]
    assert (event.actor_name, event.outcome) == ("victor", "success")


def test_details_read_as_changes() -> None:
    from datetime import UTC, datetime

    from nox_ui.models import AuditEvent
    from nox_ui.pages.admin_audit import row_of

    event = AuditEvent(
        ts=datetime(2026, 11, 26, tzinfo=UTC),
        action="settings.update",
        outcome="success",
        details='{"backup_keep": {"old": 7, "new": 14}, "smtp_from": {"old": "", "new": "a@b.c"}}',
        prev_hash="0" * 64,
        hash="",
    )
    assert row_of(event)["details"] == 'backup_keep: 7 → 14, smtp_from: "" → a@b.c'
