"""/alerts through NiceGUI's simulated user: rules and notifiers made in dialogs with errors in place,
a firing alert listed with its delivery log, and what a viewer may not do."""

from __future__ import annotations

import asyncio
import time

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.metrics.sampler import Sample
from nox_ui.roles import PANEL
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, sign_in

# Polls (of 0.1 s for should_see, 0.05 s for settle) before giving up: generous, because on a busy
# machine a row action waits for its worker-thread read; each check returns as soon as it holds.
WAIT = 200


async def settle(predicate: object, retries: int = 2 * WAIT) -> None:
    for _ in range(retries):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def table(user: User, marker: str) -> ui.table:
    found = next(iter(user.find(marker=marker).elements))
    assert isinstance(found, ui.table)
    return found


def text_of(user: User, marker: str) -> str:
    return str(getattr(next(iter(user.find(marker=marker).elements)), "text", ""))


def in_open_dialog(user: User, marker: str) -> bool:
    """Whether the element with this marker sits in a dialog that is open now (a closed dialog's
    elements still count as visible to the simulated user)."""
    found: ui.element | None = next(iter(user.find(marker=marker).elements))
    while found is not None and not isinstance(found, ui.dialog):
        found = found.parent_slot.parent if found.parent_slot is not None else None
    return found is not None and bool(found.value)


async def details_shown(user: User, title: str) -> None:
    """The alert-details dialog is open with this title."""
    await settle(lambda: text_of(user, "alert-title") == title and in_open_dialog(user, "alert-title"))


async def test_an_operator_creates_a_rule_and_sees_errors_in_place(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    app_user.find(marker="new-rule").click()
    app_user.find(marker="rule-name").type("Disk nearly full")
    metric = next(iter(app_user.find(marker="rule-metric").elements))
    assert isinstance(metric, ui.select)
    metric.set_value("disk.used_percent")
    app_user.find(marker="rule-clear").type("95")  # "> 90" cannot clear above 90
    app_user.find(marker="rule-save").click()
    await settle(
        lambda: text_of(app_user, "rule-error").startswith(
            "clear_threshold must be at most the threshold for '>'"
        )
    )
    assert accounts.alerts.rules.list() == []

    app_user.find(marker="rule-clear").clear()
    app_user.find(marker="rule-save").click()
    await settle(lambda: len(accounts.alerts.rules.list()) == 1)
    rule = accounts.alerts.rules.list()[0]
    assert (rule.name, rule.metric, rule.op, rule.threshold, rule.for_seconds) == (
        "Disk nearly full",
        "disk.used_percent",
        ">",
        90.0,
        60,
    )
    await settle(lambda: any(r["name"] == "Disk nearly full" for r in table(app_user, "alert-rules").rows))
    event = accounts.audit.query(action="alert.rule.create", limit=1).events[0]
    assert event.actor_name == "olga"


async def test_an_invalid_webhook_url_is_refused_in_the_dialog(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    app_user.find(marker="new-notifier").click()
    app_user.find(marker="notifier-name").type("hook")
    app_user.find(marker="notifier-url").type("not a url")
    app_user.find(marker="notifier-save").click()
    await app_user.should_see("config.url: must not contain spaces or control characters", retries=WAIT)
    assert accounts.notifiers.list() == []
    app_user.find(marker="notifier-url").clear().type("https://hooks.example.org/nox")
    app_user.find(marker="notifier-save").click()
    await settle(lambda: [n.name for n in accounts.notifiers.list()] == ["hook"])


async def test_a_firing_alert_is_listed_and_its_link_opens_the_delivery_log(
    app_user: User, accounts: Services
) -> None:
    accounts.settings.update(PANEL, {"notify_allowed_hosts": "127.0.0.1"})
    hook = accounts.notifiers.create(PANEL, "pager", "webhook", {"url": "http://127.0.0.1:9/hook"})
    rule = accounts.alerts.rules.create(
        PANEL,
        {
            "name": "Busy",
            "metric": "cpu.percent",
            "op": ">=",
            "threshold": 0,
            "for_seconds": 0,
            "notifiers": [hook.id],
        },
    )
    accounts.alerts.engine.evaluate(Sample(ts=time.time(), values={"cpu.percent": 42.0}, duration=0))
    await accounts.alerts.engine.drain()  # the app's loop runs: the write went to the engine's thread
    firing = accounts.alerts.queries.alerts("firing")
    assert [a.rule_id for a in firing] == [rule.id]
    accounts.notifiers.queue.start()  # writes the delivery row and tries it (port 9: nothing listens)
    try:
        await settle(lambda: accounts.notifiers.deliveries_for_alert(firing[0].id or 0), retries=200)
    finally:
        accounts.notifiers.queue.stop()
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path=f"/alerts?id={firing[0].id}")
    await details_shown(app_user, "Busy: firing")
    await app_user.should_see(marker="delivery-log", retries=WAIT)
    assert [r["notifier"] for r in table(app_user, "delivery-log").rows] == ["pager (webhook)"]
    rows = table(app_user, "active-alerts").rows
    assert [(r["state"], r["rule"]) for r in rows] == [("firing", "Busy")]
    await settle(lambda: text_of(app_user, "alert-counts") == "1 firing · 0 pending")


async def test_a_viewer_sees_an_alert_but_not_its_delivery_log_nor_where_notifiers_send(
    app_user: User, accounts: Services
) -> None:
    hook = accounts.notifiers.create(PANEL, "pager", "webhook", {"url": "https://hooks.example.org/in"})
    accounts.alerts.rules.create(
        PANEL,
        {
            "name": "Busy",
            "metric": "cpu.percent",
            "op": ">=",
            "threshold": 0,
            "for_seconds": 0,
            "notifiers": [hook.id],
        },
    )
    accounts.alerts.engine.evaluate(Sample(ts=time.time(), values={"cpu.percent": 42.0}, duration=0))
    await accounts.alerts.engine.drain()
    alert = accounts.alerts.queries.alerts("firing")[0]
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path=f"/alerts?id={alert.id}")
    await details_shown(app_user, "Busy: firing")
    with app_user.scope(marker="alert-details"):
        await app_user.should_see("The delivery log is shown to operators and admins.", retries=WAIT)
    await app_user.should_not_see(marker="delivery-log")
    await settle(lambda: len(table(app_user, "notifiers").rows) == 1)
    [shown] = table(app_user, "notifiers").rows
    assert (shown["name"], shown["target"]) == ("pager", "(shown to operators)")
    assert "hooks.example.org" not in str(table(app_user, "notifiers").rows)


async def test_a_viewer_sees_alerts_but_no_way_to_change_them(app_user: User, accounts: Services) -> None:
    accounts.alerts.rules.create(
        PANEL, {"name": "Busy", "metric": "cpu.percent", "op": ">=", "threshold": 0, "for_seconds": 0}
    )
    accounts.alerts.engine.evaluate(Sample(ts=time.time(), values={"cpu.percent": 42.0}, duration=0))
    await accounts.alerts.engine.drain()
    alert = accounts.alerts.queries.alerts("firing")[0]
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/alerts")
    await app_user.should_see(marker="active-alerts", retries=WAIT)
    # The rows arrive after the page: an action on a row not listed yet is ignored by the page.
    await settle(lambda: any(r["key"] == alert.key for r in table(app_user, "active-alerts").rows))
    await app_user.should_not_see(marker="new-rule")
    await app_user.should_not_see(marker="new-notifier")
    buttons = table(app_user, "active-alerts").slots["body-cell-actions"].template or ""
    assert "'details'" in buttons and "'ack'" not in buttons and "'silence'" not in buttons
    # An ack sent anyway (a crafted event) is refused on the server and audited
    app_user.find(marker="active-alerts").trigger("rowAction", {"action": "ack", "key": alert.key})
    await app_user.should_see("this needs the operator role; you are viewer", retries=WAIT)
    assert accounts.alerts.queries.get(alert.id or 0).acked_by is None


async def test_deleting_a_rule_asks_first(app_user: User, accounts: Services) -> None:
    rule = accounts.alerts.rules.create(
        PANEL, {"name": "Old rule", "metric": "load.1", "op": ">", "threshold": 50}
    )
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    await settle(lambda: any(r["name"] == "Old rule" for r in table(app_user, "alert-rules").rows))
    app_user.find(marker="alert-rules").trigger("rowAction", {"action": "delete", "key": rule.id})
    await app_user.should_see("Delete the rule Old rule? Its alert history goes with it.", retries=WAIT)
    assert [r.name for r in accounts.alerts.rules.list()] == ["Old rule"]  # nothing yet
    app_user.find(marker="confirm-delete").click()
    await settle(lambda: accounts.alerts.rules.list() == [])
    assert accounts.audit.query(action="alert.rule.delete", limit=1).events[0].actor_name == "olga"


async def test_details_of_a_resolved_alert_open_from_the_history_tab(
    app_user: User, accounts: Services
) -> None:
    accounts.alerts.rules.create(PANEL, {"name": "Spike", "metric": "load.5", "op": ">", "threshold": 50})
    engine = accounts.alerts.engine
    now = time.time()
    for ts, value in ((now, 90.0), (now + 1, 10.0), (now + 2, 95.0), (now + 3, 5.0)):  # two episodes
        engine.evaluate(Sample(ts=ts, values={"load.5": value}, duration=0))
    await engine.drain()
    first, second = sorted(accounts.alerts.queries.alerts("resolved"), key=lambda a: a.id or 0)
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/alerts")
    await settle(lambda: len(table(app_user, "alert-history").rows) == 2)
    buttons = table(app_user, "alert-history").slots["body-cell-actions"].template or ""
    assert "props.row.id" in buttons  # each row names its own episode, not the rule and series it shares
    app_user.find(marker="alert-history").trigger("rowAction", {"action": "details", "key": first.id})
    await details_shown(app_user, "Spike: resolved")
    assert first.id != second.id
