"""Retention: `audit_retention_days` archives old audit events (the chain still verifies), `alert_history_days` deletes old resolved alerts, and the hourly housekeeping loop runs both."""

from __future__ import annotations

from datetime import timedelta

from nox_ui.app import Services
from nox_ui.models import utcnow
from nox_ui.roles import PANEL
from nox_ui.services.audit import verify_archive
from tests.receivers import wait_until


def test_retention_off_by_default_keeps_everything(accounts: Services) -> None:
    before = accounts.audit.query(limit=1).total
    assert accounts.settings.current.audit_retention_days == 0
    assert accounts.audit_retention.run_once(utcnow() + timedelta(days=3650)) is None
    assert accounts.audit.query(limit=1).total == before


def test_retention_archives_events_older_than_the_setting_and_the_chain_verifies(accounts: Services) -> None:
    old_events = accounts.audit.query(limit=1).total
    assert old_events > 0  # the fixture's account creations
    accounts.settings.update(PANEL, {"audit_retention_days": 30})
    # 31 days later, everything recorded so far (the settings change included) is old enough
    archived = accounts.audit_retention.run_once(utcnow() + timedelta(days=31))
    assert archived is not None and archived.count == old_events + 1
    assert archived.path is not None and archived.path.parent == accounts.config.data_dir / "backups"
    assert verify_archive(archived.path).ok
    remaining = accounts.audit.query(limit=10).events
    assert [e.action for e in remaining] == ["audit.archive"]
    assert accounts.audit.verify().ok
    # a second run has nothing newer than the checkpoint to move
    again = accounts.audit_retention.run_once(utcnow() + timedelta(days=31))
    assert again is not None and again.count <= 1
    assert accounts.audit.verify().ok


def test_alert_history_retention_deletes_old_resolved_alerts_with_their_deliveries(
    accounts: Services,
) -> None:
    import time

    from sqlmodel import func, select

    from nox_ui.metrics.sampler import Sample
    from nox_ui.models import Delivery

    accounts.settings.update(PANEL, {"notify_allowed_hosts": "127.0.0.1"})  # the outbound guard allows it
    hook = accounts.notifiers.create(PANEL, "hook", "webhook", {"url": "http://127.0.0.1:9/hook"})
    accounts.alerts.rules.create(
        PANEL,
        {"name": "Busy", "metric": "cpu.percent", "op": ">", "threshold": 50, "notifiers": [hook.id]},
    )
    accounts.alerts.rules.create(PANEL, {"name": "Load", "metric": "load.1", "op": ">", "threshold": 1})
    now = time.time()
    engine = accounts.alerts.engine
    engine.evaluate(Sample(ts=now, values={"cpu.percent": 90.0, "load.1": 5.0}, duration=0))
    engine.evaluate(Sample(ts=now + 1, values={"cpu.percent": 10.0, "load.1": 5.0}, duration=0))
    assert [a.rule_name for a in accounts.alerts.queries.alerts("resolved")] == ["Busy"]
    assert [a.rule_name for a in accounts.alerts.queries.alerts("firing")] == ["Load"]

    def deliveries() -> int:
        with accounts.db.session() as session:
            return session.exec(select(func.count()).select_from(Delivery)).one()

    accounts.notifiers.queue.start()  # writes the two queued messages as delivery rows
    try:
        wait_until(lambda: deliveries() == 2)  # firing + resolved to the hook
    finally:
        accounts.notifiers.queue.stop()
    assert accounts.settings.current.alert_history_days == 90
    assert accounts.alert_retention.run_once(utcnow() + timedelta(days=89)) == (0, 0)
    assert accounts.alert_retention.run_once(utcnow() + timedelta(days=91)) == (1, 0)
    assert accounts.alerts.queries.alerts("resolved") == []
    assert [a.rule_name for a in accounts.alerts.queries.alerts("firing")] == ["Load"]  # firing episodes stay
    assert deliveries() == 0  # the resolved alert's delivery log went with it
    accounts.settings.update(PANEL, {"alert_history_days": 0})
    assert accounts.alert_retention.run_once(utcnow() + timedelta(days=3650)) is None


async def test_housekeeping_runs_every_job_and_survives_a_failing_one() -> None:
    import asyncio

    from nox_ui.services.retention import Housekeeping

    ran: list[str] = []

    def failing() -> None:
        ran.append("failing")
        raise OSError("disk full")

    housekeeping = Housekeeping([failing, lambda: ran.append("next")], every_seconds=0.01)
    task = asyncio.create_task(housekeeping.run())
    for _ in range(200):
        if ran.count("next") >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert ran[:4] == ["failing", "next", "failing", "next"]
