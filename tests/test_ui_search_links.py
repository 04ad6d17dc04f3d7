"""Where search hits lead, through NiceGUI's simulated user against the real pages and services: each
link (built by `nox_ui.search.documents` from the stored row) opens what it names on /alerts and
/admin/audit, for the role that may see it; a bad, unknown or hidden id is a notification on a page
that renders as usual, never an error page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.metrics.sampler import Sample
from nox_ui.models import Alert, AlertRule, AuditEvent, Notifier, Silence
from nox_ui.pages.alerts import data
from nox_ui.roles import PANEL
from nox_ui.search import documents
from nox_ui.search.documents import Document
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, sign_in
from tests.test_ui_alerts import WAIT, details_shown, in_open_dialog, settle, table, text_of

ROW_CLASS_FN = ":table-row-class-fn"


def link(services: Services, model: type[Any], row_id: int, build: Callable[[Any], Document]) -> str:
    """The URL search shows for this stored row (the same builder the index uses)."""
    with services.db.session() as session:
        row = session.get(model, row_id)
        assert row is not None
        return build(row).url


async def follow(user: User, username: str, password: str, url: str) -> None:
    """Sign in from the login page a link redirects to, its `next` quoted as the panel quotes it."""
    await sign_in(user, username, password, next_path=quote(url, safe="/"))


def selected_tab(user: User) -> str:
    (panels,) = user.find(marker="alert-tabs").elements
    assert isinstance(panels, ui.tab_panels)
    value = panels.value
    return str(value.props["name"] if isinstance(value, ui.tab) else value)


def highlighted(user: User, marker: str) -> str:
    """The highlight function a link set on this table ("" when none)."""
    return str(table(user, marker).props.get(ROW_CLASS_FN, ""))


def make_rule(services: Services, name: str = "Disk nearly full") -> int:
    rule = services.alerts.rules.create(
        PANEL, {"name": name, "metric": "disk.used_percent", "op": ">", "threshold": 90}
    )
    assert rule.id is not None
    return rule.id


def make_silence(services: Services, comment: str) -> int:
    silence = services.alerts.silences.create(PANEL, {"alertname": "Busy"}, comment, duration_seconds=3600)
    assert silence.id is not None
    return silence.id


async def test_a_rule_link_opens_the_rules_tab_with_the_rule_in_its_editor(
    app_user: User, accounts: Services
) -> None:
    make_rule(accounts, "Other rule")
    rule_id = make_rule(accounts)
    url = link(accounts, AlertRule, rule_id, documents.rule_document)
    assert url == f"/alerts?tab=rules&rule={rule_id}"
    await follow(app_user, "olga", OPERATOR_PASSWORD, url)
    await settle(lambda: in_open_dialog(app_user, "rule-name"))
    assert selected_tab(app_user) == "Rules"
    (name,) = app_user.find(marker="rule-name").elements
    assert isinstance(name, ui.input) and name.value == "Disk nearly full"
    assert f"row.id === {rule_id} ?" in highlighted(app_user, "alert-rules")
    assert {r["name"] for r in table(app_user, "alert-rules").rows} == {"Disk nearly full", "Other rule"}


async def test_a_viewer_gets_the_rule_highlighted_but_no_editor(app_user: User, accounts: Services) -> None:
    rule_id = make_rule(accounts)
    await follow(app_user, "victor", VIEWER_PASSWORD, f"/alerts?tab=rules&rule={rule_id}")
    await settle(lambda: f"row.id === {rule_id} ?" in highlighted(app_user, "alert-rules"))
    assert selected_tab(app_user) == "Rules"
    assert [r["name"] for r in table(app_user, "alert-rules").rows] == ["Disk nearly full"]
    assert not in_open_dialog(app_user, "rule-name")


@pytest.mark.parametrize(
    ("query", "told", "tab"),
    [
        ("tab=rules&rule=999", "no alert rule with id 999", "Rules"),
        ("tab=rules&rule=abc", "rule 'abc' is not an id (a whole number from 1)", "Rules"),
        ("tab=rules&rule=-3", "rule '-3' is not an id (a whole number from 1)", "Rules"),
        ("rule=99999999999999999999999", "rule '99999999999999999999999' is not an id", "Rules"),
        ("tab=rules&rule=", "rule '' is not an id", "Rules"),
        ("tab=silences&silence=4242", "no silence with id 4242", "Silences"),
        ("tab=notifiers&notifier=%00", "notifier '\\x00' is not an id", "Notifiers"),
        ("tab=notifiers&notifier=77", "no notifier with id 77", "Notifiers"),
        ("id=424242", "no alert with id 424242", "Active"),
        ("id=1e3", "alert '1e3' is not an id", "Active"),
        ("tab=bogus", "no tab named 'bogus' (the tabs are: active, history, rules", "Active"),
    ],
)
async def test_a_bad_or_unknown_id_is_told_and_the_page_renders(
    app_user: User, accounts: Services, query: str, told: str, tab: str
) -> None:
    make_rule(accounts)
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    response = await app_user.http_client.get(f"/alerts?{query}")
    assert response.status_code == 200, response.text[:300]
    await app_user.open(f"/alerts?{query}")
    await app_user.should_see(told, retries=WAIT)
    assert selected_tab(app_user) == tab
    await settle(lambda: [r["name"] for r in table(app_user, "alert-rules").rows] == ["Disk nearly full"])
    assert highlighted(app_user, "alert-rules") == ""
    assert not in_open_dialog(app_user, "rule-name")


async def fire_and_resolve(services: Services) -> tuple[int, int]:
    """One alert that fired and resolved ("Spike") and one that fires for as long as the panel samples
    ("Busy", cpu >= 0): (resolved id, firing id)."""
    rules = services.alerts.rules
    rules.create(PANEL, {"name": "Spike", "metric": "load.5", "op": ">", "threshold": 50, "for_seconds": 0})
    rules.create(
        PANEL, {"name": "Busy", "metric": "cpu.percent", "op": ">=", "threshold": 0, "for_seconds": 0}
    )
    now = time.time()
    for ts, values in ((now - 2, {"load.5": 90.0, "cpu.percent": 5.0}), (now - 1, {"load.5": 10.0})):
        services.alerts.engine.evaluate(Sample(ts=ts, values=values, duration=0))
    await services.alerts.engine.drain()
    (resolved,) = services.alerts.queries.alerts("resolved")
    (firing,) = services.alerts.queries.alerts("firing")
    assert resolved.id is not None and firing.id is not None
    return resolved.id, firing.id


def alert_link(services: Services, alert_id: int) -> str:
    view = services.alerts.queries.get(alert_id)
    with services.db.session() as session:
        row = session.get(Alert, alert_id)
        assert row is not None
        return documents.alert_document(row, view.rule_name).url


async def test_an_alert_link_opens_its_details_on_the_tab_of_its_state(
    app_user: User, accounts: Services
) -> None:
    resolved, firing = await fire_and_resolve(accounts)
    await follow(app_user, "victor", VIEWER_PASSWORD, alert_link(accounts, resolved))
    await details_shown(app_user, "Spike: resolved")
    assert selected_tab(app_user) == "History"
    await settle(lambda: [r["id"] for r in table(app_user, "alert-history").rows] == [resolved])
    assert f"row.id === {resolved} ?" in highlighted(app_user, "alert-history")

    await app_user.open(alert_link(accounts, firing))
    await details_shown(app_user, "Busy: firing")
    assert selected_tab(app_user) == "Active"
    await settle(lambda: f"row.id === {firing} ?" in highlighted(app_user, "active-alerts"))


async def test_a_silence_link_opens_the_silences_tab_with_it_listed_and_highlighted(
    app_user: User, accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "SILENCES_LIMIT", 1)  # the tab lists the newest silence only
    older = make_silence(accounts, "maintenance window")
    make_silence(accounts, "newer one")
    url = link(accounts, Silence, older, documents.silence_document)
    assert url == f"/alerts?tab=silences&silence={older}"
    await follow(app_user, "victor", VIEWER_PASSWORD, url)
    await settle(
        lambda: (
            {r["comment"] for r in table(app_user, "silences").rows} == {"newer one", "maintenance window"}
        )
    )
    assert selected_tab(app_user) == "Silences"
    assert f"row.id === {older} ?" in highlighted(app_user, "silences")

    await app_user.open("/alerts?tab=silences")  # no link: the newest only, nothing highlighted
    await settle(lambda: [r["comment"] for r in table(app_user, "silences").rows] == ["newer one"])
    assert selected_tab(app_user) == "Silences" and highlighted(app_user, "silences") == ""


async def test_a_notifier_link_highlights_it_for_an_operator(app_user: User, accounts: Services) -> None:
    accounts.notifiers.create(PANEL, "alpha", "webhook", {"url": "https://hooks.example.org/a"})
    hook = accounts.notifiers.create(PANEL, "pager", "webhook", {"url": "https://hooks.example.org/in"})
    assert hook.id is not None
    url = link(accounts, Notifier, hook.id, documents.notifier_document)
    assert url == f"/alerts?tab=notifiers&notifier={hook.id}"
    await follow(app_user, "olga", OPERATOR_PASSWORD, url)
    await settle(lambda: f"row.id === {hook.id} ?" in highlighted(app_user, "notifiers"))
    assert selected_tab(app_user) == "Notifiers"
    assert [r["name"] for r in table(app_user, "notifiers").rows] == ["alpha", "pager"]


async def test_a_notifier_link_tells_a_viewer_nothing_about_which_notifiers_exist(
    app_user: User, accounts: Services
) -> None:
    hook = accounts.notifiers.create(PANEL, "pager", "webhook", {"url": "https://hooks.example.org/in"})
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/alerts")
    told: list[list[str]] = []
    for notifier in (str(hook.id), "987654", "abc"):
        app_user.notify.messages.clear()
        await app_user.open(f"/alerts?tab=notifiers&notifier={notifier}")
        await app_user.should_see(data.NOTIFIER_LINKS_ROLE, retries=WAIT)
        told.append(list(app_user.notify.messages))
        assert highlighted(app_user, "notifiers") == ""
        assert "hooks.example.org" not in str(table(app_user, "notifiers").rows)
    assert told == [[data.NOTIFIER_LINKS_ROLE]] * 3  # the same answer for a real, a missing, a bad id


def audit_rows(user: User) -> list[int]:
    found = next(iter(user.find(marker="audit-table").elements))
    assert isinstance(found, ui.table)
    return [row["id"] for row in found.rows]


async def test_an_audit_link_shows_that_event_alone_until_show_all(
    app_user: User, accounts: Services
) -> None:
    event = accounts.audit.query(action="user.create", q="olga", limit=1).events[0]
    assert event.id is not None
    url = link(accounts, AuditEvent, event.id, documents.audit_document)
    assert url == f"/admin/audit?id={event.id}"
    await follow(app_user, "admin", ADMIN_PASSWORD, url)
    await settle(lambda: audit_rows(app_user) == [event.id])
    assert text_of(app_user, "audit-event-only") == f"Showing event #{event.id} only."
    assert text_of(app_user, "audit-position") == "1-1 of 1"

    app_user.find(marker="audit-show-all").click()
    await settle(lambda: len(audit_rows(app_user)) > 1)
    assert event.id in audit_rows(app_user)
    await app_user.should_not_see(marker="audit-event-only")


@pytest.mark.parametrize(
    ("value", "told"),
    [
        ("987654", "audit event 987654 not found"),
        ("x1", "audit event 'x1' is not an id (a whole number from 1)"),
        ("0", "audit event '0' is not an id"),
        ("9" * 30, "is not an id"),
    ],
)
async def test_an_unknown_or_bad_audit_id_is_told_and_the_log_shown(
    app_user: User, accounts: Services, value: str, told: str
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/admin/audit")
    response = await app_user.http_client.get(f"/admin/audit?id={value}")
    assert response.status_code == 200
    await app_user.open(f"/admin/audit?id={value}")
    await app_user.should_see(told, retries=WAIT)
    await settle(lambda: len(audit_rows(app_user)) > 1)
    await app_user.should_not_see(marker="audit-event-only")


async def test_a_viewer_following_an_audit_link_gets_403(app_user: User, accounts: Services) -> None:
    event = accounts.audit.query(limit=1).events[0]
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    response = await app_user.http_client.get(f"/admin/audit?id={event.id}")
    assert response.status_code == 403
    assert event.action not in response.text
