"""Alerting end to end with real parts: the engine fed sample by sample, the real delivery queue, an
aiosmtpd server and an HTTP receiver on loopback. What a user would notice: how many emails and
webhook calls arrive, and when."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import func, select

from nox_ui.alerts.notify import PENDING, AlertMessage, DeliveryQueue
from nox_ui.app import Services, build_services
from nox_ui.config import Settings
from nox_ui.metrics.sampler import Sample
from nox_ui.models import Delivery
from nox_ui.roles import PANEL
from tests.receivers import HttpReceiver, SmtpReceiver, wait_until

RULE = "CPU hot"


class WatchedQueue(DeliveryQueue):
    """The real queue, counting the deliveries the engine hands it. Without a running loop `evaluate`
    dispatches before it returns, so after a feed the count is final: once that many rows are written
    and none is pending, nothing more can arrive (no watching a quiet receiver for a while)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed = self._rows()[0]  # a restart finds the earlier process's rows

    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        self.handed += len(set(notifier_ids))
        super().dispatch(message, notifier_ids)

    def _rows(self) -> tuple[int, int]:
        """(delivery rows, of them pending)."""
        with self.db.session() as session:
            total = session.exec(select(func.count()).select_from(Delivery)).one()
            pending = session.exec(
                select(func.count()).select_from(Delivery).where(Delivery.status == PENDING)
            ).one()
        return total, pending

    def done(self) -> bool:
        return self._rows() == (self.handed, 0)


def fast_queue(services: Services) -> WatchedQueue:
    queue = WatchedQueue(
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=0.05,
        backoff_max=0.5,
        max_attempts=3,
        timeout=3.0,
        secrets=services.secrets,
    )
    services.notifiers.queue = queue
    queue.start()
    return queue


@pytest.fixture
def wired(
    services: Services, smtp_server: SmtpReceiver, http_receiver: HttpReceiver
) -> Iterator[dict[str, Any]]:
    """Email through the runtime SMTP settings to aiosmtpd, a webhook to the receiver, one rule using both:
    cpu.percent > 90 for 10 s, clearing only below 80."""
    services.settings.update(
        PANEL,
        {
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_from": "nox@example.org",
            "smtp_starttls": False,
            "notify_allowed_hosts": "127.0.0.1",  # the receivers listen there
        },
    )
    queue = fast_queue(services)
    email = services.notifiers.create(PANEL, "ops mail", "email", {"to": ["ops@example.org"]})
    hook = services.notifiers.create(PANEL, "ops hook", "webhook", {"url": http_receiver.url("/hook")})
    services.alerts.rules.create(
        PANEL,
        {
            "name": RULE,
            "metric": "cpu.percent",
            "op": ">",
            "threshold": 90,
            "for_seconds": 10,
            "clear_threshold": 80,
            "severity": "critical",
            "notifiers": [email.id, hook.id],
        },
    )
    yield {"smtp": smtp_server, "http": http_receiver, "queue": queue}
    queue.stop()


def feed(services: Services, start: float, values: list[float]) -> float:
    """One sample per second from `start`; returns the next timestamp."""
    for offset, value in enumerate(values):
        services.alerts.engine.evaluate(Sample(ts=start + offset, values={"cpu.percent": value}, duration=0))
    return start + len(values)


def received(smtp: SmtpReceiver, http: HttpReceiver) -> tuple[list[str], list[str]]:
    """(email subjects, webhook states) so far."""
    return [m.subject for m in smtp.messages], [r.json()["state"] for r in http.accepted]


def settle(
    queue: WatchedQueue, smtp: SmtpReceiver, http: HttpReceiver, mails: int, hooks: int
) -> tuple[list[str], list[str]]:
    wait_until(lambda: len(smtp.messages) >= mails and len(http.accepted) >= hooks, timeout=10)
    wait_until(queue.done, timeout=10)  # and nothing more can arrive
    return received(smtp, http)


def test_fires_after_for_seconds_once_holds_through_hysteresis_and_resolves_once(
    services: Services, wired: dict[str, Any]
) -> None:
    smtp, http = wired["smtp"], wired["http"]
    now = time.time()
    now = feed(services, now, [95.0] * 10)  # held 9 s: still pending
    wait_until(wired["queue"].done, timeout=10)
    assert received(smtp, http) == ([], [])
    assert services.alerts.engine.counts().pending == 1

    now = feed(services, now, [96.0])  # held 10 s: fires
    subjects, states = settle(wired["queue"], smtp, http, 1, 1)
    assert subjects == [f"[CRITICAL] {RULE} on cpu.percent"]
    assert states == ["firing"]
    body = http.accepted[0].json()
    assert (body["rule"], body["severity"], body["metric"], body["threshold"]) == (
        RULE,
        "critical",
        "cpu.percent",
        90.0,
    )
    assert RULE in smtp.messages[0].body and "firing" in smtp.messages[0].body

    now = feed(services, now, [85.0, 88.0, 95.0, 82.0])  # between clear (80) and threshold: holds
    assert received(smtp, http) == (subjects, states)
    assert services.alerts.engine.counts().firing == 1

    feed(services, now, [70.0, 60.0])  # below 80: resolves, once
    subjects, states = settle(wired["queue"], smtp, http, 2, 2)
    assert subjects == [f"[CRITICAL] {RULE} on cpu.percent", f"[RESOLVED] {RULE} on cpu.percent"]
    assert states == ["firing", "resolved"]
    resolved = services.alerts.queries.alerts("resolved")
    assert len(resolved) == 1 and resolved[0].rule_name == RULE
    log = services.notifiers.deliveries_for_alert(resolved[0].id or 0)
    assert sorted((d.notifier_name, d.event, d.status) for d in log) == [
        ("ops hook", "firing", "sent"),
        ("ops hook", "resolved", "sent"),
        ("ops mail", "firing", "sent"),
        ("ops mail", "resolved", "sent"),
    ]


def test_a_value_flapping_faster_than_for_seconds_sends_nothing(
    services: Services, wired: dict[str, Any]
) -> None:
    smtp, http = wired["smtp"], wired["http"]
    now = time.time()
    for _ in range(6):
        now = feed(services, now, [97.0] * 6 + [40.0] * 2)  # 6 s above, 2 s below, again and again
    wait_until(wired["queue"].done, timeout=10)
    assert received(smtp, http) == ([], [])
    assert services.alerts.queries.alerts("firing") == []
    assert services.alerts.queries.alerts("resolved") == []


def test_a_silenced_alert_fires_but_notifies_nobody(services: Services, wired: dict[str, Any]) -> None:
    smtp, http = wired["smtp"], wired["http"]
    services.alerts.silences.create(PANEL, {"alertname": RULE}, "planned maintenance", duration_seconds=3600)
    now = feed(services, time.time(), [99.0] * 12)
    firing = services.alerts.queries.alerts("firing")
    assert len(firing) == 1 and firing[0].silenced
    feed(services, now, [10.0])
    wait_until(wired["queue"].done, timeout=10)
    assert received(smtp, http) == ([], [])
    assert len(services.alerts.queries.alerts("resolved")) == 1


def test_a_restart_with_a_firing_alert_does_not_notify_again_and_still_resolves_once(
    settings: Settings, services: Services, wired: dict[str, Any]
) -> None:
    smtp, http = wired["smtp"], wired["http"]
    now = feed(services, time.time(), [95.0] * 11)
    settle(wired["queue"], smtp, http, 1, 1)
    wired["queue"].stop()
    services.alerts.close()

    again = build_services(settings)  # a new process over the same database
    queue = fast_queue(again)
    try:
        assert again.alerts.engine.counts().firing == 1  # restored, not lost
        now = feed(again, now, [96.0] * 5)  # still above: no second firing message
        wait_until(queue.done, timeout=10)
        assert received(smtp, http) == ([f"[CRITICAL] {RULE} on cpu.percent"], ["firing"])
        feed(again, now, [50.0])
        subjects, states = settle(queue, smtp, http, 2, 2)
        assert states == ["firing", "resolved"]
        assert subjects[1] == f"[RESOLVED] {RULE} on cpu.percent"
    finally:
        queue.stop()
        again.alerts.close()
        again.close()


def test_a_receiver_sees_firing_before_resolved_even_when_firing_needed_retries(
    services: Services, wired: dict[str, Any]
) -> None:
    http = wired["http"]
    wired["queue"].stop()
    slow = DeliveryQueue(  # a 0.5 s backoff, so the resolved message comes while firing waits
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=0.5,
        secrets=services.secrets,
    )
    services.notifiers.queue = wired["queue"] = slow
    slow.start()
    http.fail_next(1)  # the firing webhook is refused once
    now = feed(services, time.time(), [95.0] * 11)  # fires
    wait_until(lambda: len(http.requests) == 1, timeout=10)  # the refused firing attempt
    feed(services, now, [10.0])  # resolves while the firing webhook waits for its retry
    wait_until(lambda: len(http.accepted) >= 2, timeout=10)
    assert [r.json()["state"] for r in http.accepted] == ["firing", "resolved"]
