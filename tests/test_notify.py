"""Notifiers and the delivery queue against real servers on loopback: an SMTP server (aiosmtpd), an HTTP
receiver, apprise's json:// plugin posting to that receiver, and a closed port for an unreachable hook.

The receivers listen on 127.0.0.1, which the outbound guard refuses by default: the tests that send to
them first allow it through the settings service (`notify_allowed_hosts`), as an admin would."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from sqlmodel import select

from nox_ui.alerts import kinds
from nox_ui.alerts.channels import signature
from nox_ui.alerts.messages import AlertMessage
from nox_ui.alerts.notify import DeliveryQueue, DeliveryView, NotifierView
from nox_ui.app import Services
from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.errors import Conflict, Forbidden, Invalid, NotFound
from nox_ui.models import Alert, AlertRule, AuditEvent, Delivery, Notifier
from nox_ui.outbound import OutboundGuard
from nox_ui.roles import PANEL, Principal, Role
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer
from tests.receivers import LOOPBACK, HttpReceiver, SmtpReceiver, wait_until
from tests.test_outbound import Redirector, TestResolver

SECRET = "hook-S3CRET-value"
APPRISE_TOKEN = "tok3nInPath-9f8e7d"
SLACK_TOKEN = "TIiajkdnlazkcOXrIdevi7FQ"
BACKOFF = 0.05
MAX_ATTEMPTS = 4


# -- helpers -------------------------------------------------------------------------------------------


def allow_loopback(services: Services) -> None:
    """What an admin does to let notifiers reach the receivers on 127.0.0.1."""
    services.settings.update(PANEL, {"notify_allowed_hosts": "127.0.0.1"})


@pytest.fixture
def loopback_allowed(services: Services) -> None:
    allow_loopback(services)


@pytest.fixture
def queue(services: Services, loopback_allowed: None) -> Iterator[DeliveryQueue]:
    """A fast queue (0.05 s backoff, 4 attempts) in place of the default one, running; 127.0.0.1 is an
    allowed target."""
    fast = DeliveryQueue(
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=BACKOFF,
        backoff_max=1.0,
        max_attempts=MAX_ATTEMPTS,
        timeout=3.0,
        secrets=services.secrets,
    )
    services.notifiers.queue = fast
    fast.start()
    yield fast
    fast.stop()


# The service tests need no accounts (an audit event names its actor without a foreign key), which keeps
# them free of password hashing; the API tests sign in the accounts of conftest's `accounts` fixture.
ADMIN = Principal(user_id=1, username="admin", role=Role.ADMIN)
OPERATOR = Principal(user_id=2, username="olga", role=Role.OPERATOR)
VIEWER = Principal(user_id=3, username="victor", role=Role.VIEWER)


def operator(_services: Services) -> Principal:
    return OPERATOR


def make_alert(services: Services, *, rule_name: str = "Disk almost full", state: str = "firing") -> Alert:
    """A rule and one of its alert episodes, as the engine stores them."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        rule = AlertRule(
            name=rule_name,
            metric='disk.used_percent{mount="/"}',
            op=">",
            threshold=90.0,
            severity="critical",
            description="The root file system is nearly full.",
        )
        session.add(rule)
        session.flush()
        assert rule.id is not None
        alert = Alert(
            rule_id=rule.id,
            series='disk.used_percent{mount="/"}',
            labels={"mount": "/"},
            state=state,
            severity="critical",
            value=97.5,
            threshold=90.0,
            pending_since=now - timedelta(minutes=6),
            fired_at=now - timedelta(minutes=5),
            resolved_at=now if state == "resolved" else None,
        )
        session.add(alert)
        session.commit()
        session.refresh(alert)
    return alert


def message_for(services: Services, alert: Alert, *, state: str = "firing") -> AlertMessage:
    with services.db.session() as session:
        rule = session.get(AlertRule, alert.rule_id)
    assert rule is not None and alert.id is not None
    return AlertMessage(
        rule_id=rule.id,
        rule_name=rule.name,
        state=state,
        severity=alert.severity,
        metric=alert.series,
        labels=dict(alert.labels),
        value=alert.value,
        threshold=alert.threshold,
        started_at=alert.fired_at,
        ended_at=(alert.resolved_at or datetime.now(UTC)) if state == "resolved" else None,
        url=services.notifiers.alert_link(alert.id),
        description=rule.description,
        alert_id=alert.id,
    )


def deliveries(services: Services) -> list[Delivery]:
    with services.db.session() as session:
        return list(session.exec(select(Delivery).order_by(Delivery.id)).all())  # type: ignore[arg-type]


def settled(services: Services, count: int = 1) -> list[Delivery]:
    """Wait until `count` deliveries exist and none is pending."""
    return wait_until(
        lambda: (
            (rows := deliveries(services))
            and len(rows) >= count
            and all(r.status != "pending" for r in rows)
            and rows
        )
    )


def audit_events(services: Services, prefix: str = "notifier.") -> list[AuditEvent]:
    with services.db.session() as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    return [row for row in rows if row.action.startswith(prefix)]


def use_smtp(services: Services, smtp: SmtpReceiver, **extra: Any) -> None:
    services.settings.update(
        PANEL,
        {
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "smtp_from": "nox@example.org",
            **extra,
        },
    )


def webhook(services: Services, url: str, *, secret: str | None = SECRET, name: str = "hook") -> NotifierView:
    config: dict[str, Any] = {"url": url}
    if secret:
        config["secret"] = secret
    return services.notifiers.create(operator(services), name, "webhook", config)


def attempt_times(delivery: Delivery) -> list[datetime]:
    return [
        datetime.fromisoformat(line.split(" at ", 1)[1].split(": ", 1)[0])
        for line in delivery.error.splitlines()
    ]


# -- email ---------------------------------------------------------------------------------------------


def test_email_arrives_once_through_the_smtp_settings_with_rule_and_state(
    services: Services, queue: DeliveryQueue, smtp_server: SmtpReceiver
) -> None:
    use_smtp(services, smtp_server)
    mail = services.notifiers.create(
        operator(services), "ops mail", "email", {"to": ["ops@example.org", "oncall@example.org"]}
    )
    alert = make_alert(services)

    services.notifiers.dispatch(message_for(services, alert), [mail.id])

    [row] = settled(services)
    assert (row.status, row.attempts, row.event, row.alert_id) == ("sent", 1, "firing", alert.id)
    assert row.sent_at is not None and row.error == ""
    [received] = smtp_server.messages
    assert received.mail_from == "nox@example.org"
    assert sorted(received.rcpt_tos) == ["oncall@example.org", "ops@example.org"]
    assert received.subject == '[CRITICAL] Disk almost full on disk.used_percent{mount="/"}'
    body = received.body
    for expected in (
        "Rule:      Disk almost full",
        "State:     firing",
        "Severity:  critical",
        'Metric:    disk.used_percent{mount="/"}',
        "Labels:    mount=/",
        "Value:     97.5",
        "Threshold: 90",
        f"Link:      http://127.0.0.1:8080/alerts?id={alert.id}",
        "The root file system is nearly full.",
    ):
        assert expected in body

    services.notifiers.dispatch(message_for(services, alert, state="resolved"), [mail.id])
    settled(services, 2)
    resolved = smtp_server.messages[1]
    assert resolved.subject.startswith("[RESOLVED] Disk almost full")
    assert "State:     resolved" in resolved.body
    assert len(smtp_server.messages) == 2


def test_email_logs_in_when_a_user_name_is_set_and_a_wrong_password_never_shows(
    services: Services, queue: DeliveryQueue
) -> None:
    with SmtpReceiver(username="mailer", password="right-mail-pass") as smtp:
        use_smtp(services, smtp, smtp_username="mailer", smtp_password="wrong-mail-pass")
        mail = services.notifiers.create(operator(services), "mail", "email", {"to": ["ops@example.org"]})
        alert = make_alert(services)
        services.notifiers.dispatch(message_for(services, alert), [mail.id])
        [failed] = settled(services)
        assert (failed.status, failed.attempts) == ("failed", MAX_ATTEMPTS)
        assert "SMTPAuthenticationError" in failed.error
        assert "wrong-mail-pass" not in failed.error
        assert smtp.messages == []

        services.settings.update(PANEL, {"smtp_password": "right-mail-pass"})
        services.notifiers.dispatch(message_for(services, alert), [mail.id])
        sent = settled(services, 2)[1]
        assert sent.status == "sent"
        assert smtp.logins == ["mailer"]
        assert len(smtp.messages) == 1


def test_email_without_an_smtp_host_fails_with_a_clear_error(
    services: Services, queue: DeliveryQueue
) -> None:
    mail = services.notifiers.create(operator(services), "mail", "email", {"to": ["ops@example.org"]})
    test = services.notifiers.send_test(operator(services), mail.id)
    result = services.notifiers.wait_for_delivery(test.id, 10)
    assert (result.status, result.attempts, result.event) == ("failed", 1, "test")
    assert result.last_error.endswith("email is not configured: set smtp_host in Settings")


# -- webhook and apprise ----------------------------------------------------------------------------


def test_webhook_gets_one_json_post_with_every_field_and_a_valid_signature(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    hook = webhook(services, http_receiver.url("/hooks/nox"))
    alert = make_alert(services)

    services.notifiers.dispatch(message_for(services, alert), [hook.id])

    [row] = settled(services)
    assert (row.status, row.attempts) == ("sent", 1)
    [request] = http_receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/nox")
    assert request.header("Content-Type") == "application/json"
    assert request.header(
        "User-Agent",
    ).startswith("nox-ui/")  # type: ignore[union-attr]
    assert request.header("X-Nox-Event") == "firing"
    assert request.header("X-Nox-Delivery") == str(row.id)
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.header("X-Nox-Signature") or "", expected)
    payload = request.json()
    assert payload["rule"] == "Disk almost full"
    assert payload["state"] == "firing"
    assert payload["severity"] == "critical"
    assert payload["metric"] == 'disk.used_percent{mount="/"}'
    assert payload["labels"] == {"mount": "/"}
    assert payload["value"] == 97.5
    assert payload["threshold"] == 90.0
    assert datetime.fromisoformat(payload["started_at"]) == alert.fired_at
    assert payload["ended_at"] is None
    assert payload["url"] == f"http://127.0.0.1:8080/alerts?id={alert.id}"
    assert payload["alert_id"] == alert.id

    services.notifiers.dispatch(message_for(services, alert, state="resolved"), [hook.id])
    settled(services, 2)
    resolved = http_receiver.requests[1].json()
    assert resolved["state"] == "resolved" and resolved["ended_at"] is not None


def test_a_webhook_without_a_secret_is_not_signed(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    hook = webhook(services, http_receiver.url("/plain"), secret=None)
    services.notifiers.dispatch(message_for(services, make_alert(services)), [hook.id])
    settled(services)
    [request] = http_receiver.requests
    assert request.header("X-Nox-Signature") is None


def test_apprise_json_url_posts_to_the_receiver(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    url = f"json://127.0.0.1:{http_receiver.port}/apprise/{APPRISE_TOKEN}"
    notifier = services.notifiers.create(operator(services), "apprise", "apprise", {"urls": [url]})
    alert = make_alert(services)

    services.notifiers.dispatch(message_for(services, alert), [notifier.id])

    [row] = settled(services)
    assert row.status == "sent", row.error
    [request] = http_receiver.requests
    assert request.path == f"/apprise/{APPRISE_TOKEN}"
    body = request.json()
    assert body["title"] == '[CRITICAL] Disk almost full on disk.used_percent{mount="/"}'
    assert "Rule:      Disk almost full" in body["message"]
    assert "State:     firing" in body["message"]
    assert body["type"] == "failure"


def test_an_apprise_failure_lands_in_the_delivery_log_without_the_url(
    services: Services, queue: DeliveryQueue, closed_port: int
) -> None:
    url = f"json://127.0.0.1:{closed_port}/apprise/{APPRISE_TOKEN}"
    notifier = services.notifiers.create(operator(services), "apprise", "apprise", {"urls": [url]})
    result = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, notifier.id).id, 10)
    assert result.status == "failed"
    assert "Connection error" in result.error
    assert APPRISE_TOKEN not in result.error


# -- retries -------------------------------------------------------------------------------------------


def test_an_unreachable_webhook_is_retried_with_backoff_and_the_failure_is_logged(
    services: Services, queue: DeliveryQueue, closed_port: int
) -> None:
    hook = webhook(services, f"http://127.0.0.1:{closed_port}/hook")
    alert = make_alert(services)

    services.notifiers.dispatch(message_for(services, alert), [hook.id])

    # While it retries, the log already shows the attempts so far and when the next one is due.
    retrying = wait_until(
        lambda: [r for r in deliveries(services) if r.attempts >= 1 and r.status == "pending"]
    )
    assert retrying[0].next_attempt_at is not None and retrying[0].error.startswith("attempt 1 at ")

    [row] = settled(services)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert row.next_attempt_at is None and row.sent_at is None
    lines = row.error.splitlines()
    assert len(lines) == MAX_ATTEMPTS
    assert all("ConnectError" in line for line in lines)
    times = attempt_times(row)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    # Each wait is at least the backoff for that attempt: 0.05, 0.1, 0.2 s.
    for attempt, gap in enumerate(gaps, start=1):
        assert gap >= queue.delay(attempt) - 0.002, (attempt, gaps)
    assert times == sorted(times)

    [logged] = services.notifiers.deliveries_for_alert(alert.id or 0)
    assert (logged.status, logged.attempts, logged.notifier_name) == ("failed", MAX_ATTEMPTS, "hook")
    assert logged.last_error.startswith("ConnectError")  # without the log line's "attempt N at" prefix


def test_a_receiver_that_fails_twice_then_succeeds_ends_sent_after_three_attempts(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    http_receiver.fail_next(2, status=503)
    hook = webhook(services, http_receiver.url("/flaky"))

    services.notifiers.dispatch(message_for(services, make_alert(services)), [hook.id])

    [row] = settled(services)
    assert (row.status, row.attempts) == ("sent", 3)
    assert [r.status for r in http_receiver.requests] == [503, 503, 200]
    assert len(http_receiver.accepted) == 1
    assert [line.split(": ", 1)[1] for line in row.error.splitlines()] == ["HTTP 503 Service Unavailable"] * 2
    arrivals = [r.at for r in http_receiver.requests]
    assert arrivals[1] - arrivals[0] >= BACKOFF - 0.002
    assert arrivals[2] - arrivals[1] >= 2 * BACKOFF - 0.002


def test_pending_deliveries_survive_a_restart_of_the_queue(
    services: Services, queue: DeliveryQueue, closed_port: int
) -> None:
    hook = webhook(services, f"http://127.0.0.1:{closed_port}/later")
    alert = make_alert(services)
    slow = DeliveryQueue(
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=60.0,
        secrets=services.secrets,
    )
    queue.stop()
    services.notifiers.queue = slow
    slow.start()
    services.notifiers.dispatch(message_for(services, alert), [hook.id])
    wait_until(lambda: [r for r in deliveries(services) if r.attempts == 1])
    slow.stop()
    [row] = deliveries(services)
    assert (row.status, row.attempts) == ("pending", 1)

    with services.db.session() as session:  # the minute until its retry has passed
        stored = session.get(Delivery, row.id)
        assert stored is not None
        stored.next_attempt_at = datetime.now(UTC)
        session.add(stored)
        session.commit()
    with HttpReceiver(port=closed_port) as receiver:
        services.notifiers.queue = queue
        queue.start()  # a new run: nothing in memory, only the database
        [done] = settled(services)
        assert (done.status, done.attempts) == ("sent", 2)
        [request] = receiver.requests
    payload = request.json()
    assert (payload["rule"], payload["state"], payload["alert_id"]) == (
        "Disk almost full",
        "firing",
        alert.id,
    )
    assert payload["labels"] == {"mount": "/"} and payload["value"] == 97.5


def test_messages_dispatched_just_before_stop_are_kept_and_sent_at_the_next_start(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    hook = webhook(services, http_receiver.url("/last"))
    alert = make_alert(services)
    for _ in range(3):
        services.notifiers.dispatch(message_for(services, alert), [hook.id])
    queue.stop()
    assert len(deliveries(services)) == 3  # written, whether or not already sent
    queue.start()
    assert all(row.status == "sent" for row in settled(services, 3))
    assert len(http_receiver.requests) == 3


def test_dispatch_returns_at_once_skips_unknown_notifiers_and_waits_for_the_worker(
    services: Services, http_receiver: HttpReceiver, loopback_allowed: None
) -> None:
    hook = webhook(services, http_receiver.url("/hook"))
    message = message_for(services, make_alert(services))
    notifiers = services.notifiers
    notifiers.dispatch(message, [hook.id, 987654, hook.id])  # the worker is not running yet
    assert deliveries(services) == []
    notifiers.queue.start()
    try:
        [row] = settled(services)
    finally:
        notifiers.queue.stop()
    assert row.status == "sent" and row.notifier_id == hook.id
    assert len(http_receiver.requests) == 1


def test_dispatch_does_not_wait_for_a_delivery_in_progress(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    """The receiver holds the first POST unanswered: dispatching meanwhile returns, and the delivery
    stays pending until the receiver answers."""
    hook = webhook(services, http_receiver.url("/held"))
    alert = make_alert(services)
    http_receiver.hold()
    services.notifiers.dispatch(message_for(services, alert), [hook.id])
    wait_until(lambda: http_receiver.held == 1)  # the POST arrived and waits for its answer
    services.notifiers.dispatch(message_for(services, alert, state="resolved"), [hook.id])
    rows = deliveries(services)
    assert rows and rows[0].status == "pending" and rows[0].sent_at is None
    http_receiver.release()
    assert [row.status for row in settled(services, 2)] == ["sent", "sent"]
    assert [r.json()["state"] for r in http_receiver.accepted] == ["firing", "resolved"]


def test_a_message_whose_rule_was_deleted_is_delivered_without_an_alert_id(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    hook = webhook(services, http_receiver.url("/gone"))
    message = replace(
        message_for(services, make_alert(services), state="resolved"), alert_id=None, url="http://x/alerts"
    )
    services.notifiers.dispatch(message, [hook.id])
    [row] = settled(services)
    assert (row.event, row.alert_id, row.status) == ("resolved", None, "sent")
    assert http_receiver.requests[0].json()["state"] == "resolved"


def test_no_secret_reaches_a_log_line(
    services: Services,
    queue: DeliveryQueue,
    http_receiver: HttpReceiver,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # as configure_logging leaves it in production: SQL statement logging (with parameters) stays off
    caplog.set_level(logging.WARNING, logger="sqlalchemy")
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    try:
        good = webhook(services, http_receiver.url("/in?key=qs-secret-1"), name="good")
        bad = webhook(services, f"http://127.0.0.1:{closed_port}/in?key=qs-secret-2", name="bad")
        ids = [good.id, bad.id]
        for port in (http_receiver.port, closed_port):
            url = f"json://127.0.0.1:{port}/apprise/{APPRISE_TOKEN}"
            ids.append(services.notifiers.create(OPERATOR, f"apprise {port}", "apprise", {"urls": [url]}).id)
        services.notifiers.dispatch(message_for(services, make_alert(services)), ids)
        rows = settled(services, 4)
    finally:
        logger.remove(sink)
    assert sorted(r.status for r in rows) == ["failed", "failed", "sent", "sent"]
    logged = "\n".join(lines) + caplog.text
    assert "failed for good" in logged
    for secret in (SECRET, "qs-secret-1", "qs-secret-2", APPRISE_TOKEN):
        assert secret not in logged
        assert all(secret not in r.error for r in rows)


# -- the outbound guard (SSRF) -----------------------------------------------------------------------


def start_queue(services: Services, outbound: OutboundGuard | None = None) -> DeliveryQueue:
    """A fast running queue like the `queue` fixture's, optionally with a guard of the test's own."""
    fast = DeliveryQueue(
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=BACKOFF,
        backoff_max=1.0,
        max_attempts=MAX_ATTEMPTS,
        timeout=3.0,
        secrets=services.secrets,
        outbound=outbound,
    )
    services.notifiers.queue = fast
    fast.start()
    return fast


def guard_with(services: Services, answers: dict[str, list[list[str]]]) -> OutboundGuard:
    """The guard reading the live setting, with a resolver that also knows the test's host names."""
    return OutboundGuard(
        lambda: services.settings.current.notify_allowed_hosts, resolve=TestResolver(answers)
    )


REFUSED_WHEN_SAVED = [
    ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:{port}/hook", "localhost is a loopback name"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("http://[::1]:{port}/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/hook", "::ffff:127.0.0.1 is a loopback address"),
    ("http://2130706433:{port}/hook", "2130706433 is a loopback address"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_WHEN_SAVED)
def test_a_webhook_to_an_internal_address_is_refused_when_saved(
    services: Services, http_receiver: HttpReceiver, url: str, reason: str
) -> None:
    with pytest.raises(Invalid) as caught:
        webhook(services, url.format(port=http_receiver.port))
    assert caught.value.message == (
        f"config.url: refused: {reason}; an admin can allow it in Settings → Security → notify_allowed_hosts"
    )
    assert services.notifiers.list() == []
    assert http_receiver.requests == []


def test_an_update_to_an_internal_address_is_refused_and_a_rename_of_an_allowed_one_is_not(
    services: Services,
) -> None:
    hook = webhook(services, "https://hooks.example.org/in")
    with pytest.raises(Invalid, match="notify_allowed_hosts"):
        services.notifiers.update(OPERATOR, hook.id, config={"url": "http://169.254.169.254/"})
    assert services.notifiers.get(hook.id).config["url"] == "https://hooks.example.org/in"
    allow_loopback(services)
    inside = webhook(services, "http://127.0.0.1:9/in", name="inside")
    services.settings.update(PANEL, {"notify_allowed_hosts": ""})
    # what is stored stays usable for edits that do not touch the target (sending is refused instead)
    assert services.notifiers.update(OPERATOR, inside.id, name="renamed").name == "renamed"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_a_target_no_longer_allowed_is_refused_at_send_time_without_a_connection(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver, host: str
) -> None:
    hook = webhook(services, f"http://{host}:{http_receiver.port}/hook")  # allowed: 127.0.0.1 is listed
    services.settings.update(PANEL, {"notify_allowed_hosts": ""})

    services.notifiers.dispatch(message_for(services, make_alert(services)), [hook.id])

    [row] = settled(services)
    assert (row.status, row.attempts) == ("failed", 1)  # a refusal is not retried
    assert row.error.split(": ", 1)[1].startswith("refused by the outbound guard: ")
    assert (
        "a loopback address; an admin can allow it in Settings → Security → notify_allowed_hosts" in row.error
    )
    assert http_receiver.requests == []


def test_a_host_name_resolving_to_loopback_is_refused_at_send_time(
    services: Services, http_receiver: HttpReceiver
) -> None:
    queue = start_queue(services, guard_with(services, {"hooks.internal.test": [["127.0.0.1"]]}))
    try:
        hook = webhook(services, f"http://hooks.internal.test:{http_receiver.port}/hook")  # a name: saved
        refused = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, hook.id).id, 10)
        assert (refused.status, refused.attempts) == ("failed", 1)
        assert refused.last_error == (
            "refused by the outbound guard: hooks.internal.test resolves to a loopback address; "
            "an admin can allow it in Settings → Security → notify_allowed_hosts"
        )
        assert http_receiver.requests == []

        allow_loopback(services)  # takes effect at once, for the very next send
        sent = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, hook.id).id, 10)
        assert sent.status == "sent", sent.error
        [request] = http_receiver.requests
        assert request.header("Host") == f"hooks.internal.test:{http_receiver.port}"
    finally:
        queue.stop()


def test_a_webhook_redirect_is_reported_not_followed(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    with Redirector(http_receiver.url("/elsewhere")) as redirector:
        hook = webhook(services, redirector.url("/hook"))
        result = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, hook.id).id, 10)
    assert result.status == "failed"
    assert result.last_error == "HTTP 302 Found (redirects are not followed)"
    assert redirector.hits == 1 and http_receiver.requests == []


def test_the_delivery_log_keeps_a_status_or_an_error_class_never_what_the_target_answered(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    http_receiver.fail_next(1, status=500)  # answers {"error": "told to fail"}
    hook = webhook(services, http_receiver.url("/fails"))
    failing = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, hook.id).id, 10)
    assert failing.last_error == "HTTP 500 Internal Server Error"

    # A service that is not HTTP answers with its banner: the log names the protocol error, not the banner.
    with socket.create_server((LOOPBACK, 0)) as banner_server:
        port = banner_server.getsockname()[1]

        def answer_with_a_banner() -> None:
            connection, _ = banner_server.accept()
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.6 internal-banner-text\r\n")
                # Half-close after the banner, then read everything the client sends: closing with its
                # request unread would reset the connection (ReadError) instead, depending on timing.
                connection.shutdown(socket.SHUT_WR)
                b"".join(iter(lambda: connection.recv(65536), b""))

        threading.Thread(target=answer_with_a_banner, daemon=True).start()
        ssh = webhook(services, f"http://127.0.0.1:{port}/", name="ssh")
        banner = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, ssh.id).id, 10)
    assert banner.status == "failed"
    assert banner.last_error.startswith("RemoteProtocolError"), banner.last_error
    logged = "\n".join(d.error for d in services.notifiers.recent_deliveries())
    for answered in ("told to fail", "internal-banner-text", "OpenSSH"):
        assert answered not in logged


def test_an_apprise_url_naming_an_internal_host_is_refused_when_saved(services: Services) -> None:
    for url, reason in (
        (f"json://127.0.0.1:9/apprise/{APPRISE_TOKEN}", "127.0.0.1 is a loopback address"),
        ("form://[::1]:9/x", "::1 is a loopback address"),
        ("xml://localhost/x", "localhost is a loopback name"),
        ("gotify://169.254.169.254/token", "169.254.169.254 is a link-local address"),
    ):
        with pytest.raises(Invalid) as caught:
            services.notifiers.create(OPERATOR, "bell", "apprise", {"urls": ["ntfys://ntfy.sh/t", url]})
        assert caught.value.message.startswith(f"config.urls[1]: refused: {reason}; an admin can allow it")
        assert APPRISE_TOKEN not in caught.value.message
    # services whose URL holds only tokens name no host to check
    slack = services.notifiers.create(
        OPERATOR, "slack", "apprise", {"urls": [f"slack://T1/A2/{SLACK_TOKEN}"]}
    )
    assert slack.config == {"urls": ["slack://…"]}


def test_apprise_is_checked_before_sending_and_again_when_it_connects(
    services: Services, http_receiver: HttpReceiver
) -> None:
    name = "bell.internal.test"
    # 93.184.216.34 is only ever looked up, never connected to: the first answer passes the check before
    # sending, the second (a rebinding DNS) is what apprise's connection would use, and is refused.
    answers = {name: [["127.0.0.1"], ["93.184.216.34"], ["127.0.0.1"]]}
    queue = start_queue(services, guard_with(services, answers))
    try:
        url = f"json://{name}:{http_receiver.port}/apprise/{APPRISE_TOKEN}"
        bell = services.notifiers.create(OPERATOR, "bell", "apprise", {"urls": [url]})

        checked_first = services.notifiers.wait_for_delivery(
            services.notifiers.send_test(PANEL, bell.id).id, 10
        )
        assert (checked_first.status, checked_first.attempts) == ("failed", 1)
        assert checked_first.last_error.startswith(
            f"refused by the outbound guard: {name} resolves to a loopback address"
        )
        rebound = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, bell.id).id, 10)
        assert rebound.status == "failed"
        assert rebound.last_error.startswith(f"refused by the outbound guard: {name} resolves to a loopback")
        assert http_receiver.requests == []

        allow_loopback(services)
        sent = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, bell.id).id, 10)
        assert sent.status == "sent", sent.error
        # apprise reached the receiver through the address the guard resolved (no real DNS knows the name)
        [request] = http_receiver.requests
        assert request.path == f"/apprise/{APPRISE_TOKEN}"
        assert all(APPRISE_TOKEN not in d.error for d in services.notifiers.recent_deliveries())
    finally:
        queue.stop()


# -- secrets at rest ---------------------------------------------------------------------------------


def raw_database(services: Services) -> bytes:
    """The database as it lies on disk: the main file and its write-ahead log."""
    path = services.config.data_dir / "nox.db"
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_notifier_secrets_are_encrypted_at_rest_and_still_used_to_send(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    hook_secret, hook_token = "s3cr3t-value-xyz", "hook-path-T0KEN-4711"
    hook = webhook(services, http_receiver.url(f"/hooks/{hook_token}"), secret=hook_secret)
    apprise_url = f"json://127.0.0.1:{http_receiver.port}/apprise/{APPRISE_TOKEN}"
    bell = services.notifiers.create(OPERATOR, "bell", "apprise", {"urls": [apprise_url]})

    services.notifiers.dispatch(message_for(services, make_alert(services)), [hook.id, bell.id])

    assert [row.status for row in settled(services, 2)] == ["sent", "sent"]
    signed, notified = sorted(http_receiver.requests, key=lambda r: r.path.startswith("/apprise"))
    assert signed.path == f"/hooks/{hook_token}"
    expected = "sha256=" + hmac.new(hook_secret.encode(), signed.body, hashlib.sha256).hexdigest()
    assert signed.header("X-Nox-Signature") == expected
    assert notified.path == f"/apprise/{APPRISE_TOKEN}"
    on_disk = raw_database(services)
    for secret in (hook_secret, hook_token, APPRISE_TOKEN):
        assert secret.encode() not in on_disk
    assert services.notifiers.get(hook.id).config == {
        "url": f"http://127.0.0.1:{http_receiver.port}/hooks/…",
        "secret_set": True,
    }


def test_plain_text_secrets_from_before_still_work_and_are_encrypted_at_the_next_write(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    legacy = {"url": http_receiver.url("/old"), "secret": "legacy-secret-123"}
    with services.db.session() as session:  # as a panel before encryption stored it
        row = Notifier(name="old hook", kind="webhook", config=json.dumps(legacy))
        session.add(row)
        session.commit()
        session.refresh(row)
    assert row.id is not None
    assert services.notifiers.get(row.id).config == {
        "url": f"http://127.0.0.1:{http_receiver.port}/old",
        "secret_set": True,
    }
    sent = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, row.id).id, 10)
    assert sent.status == "sent"
    body = http_receiver.requests[0].body
    assert http_receiver.requests[0].header("X-Nox-Signature") == signature(body, "legacy-secret-123")

    services.notifiers.update(OPERATOR, row.id, name="old hook, renamed")
    with services.db.session() as session:
        stored = session.get(Notifier, row.id)
    assert stored is not None and "legacy-secret-123" not in stored.config
    again = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, row.id).id, 10)
    assert again.status == "sent"
    body = http_receiver.requests[1].body
    assert http_receiver.requests[1].header("X-Nox-Signature") == signature(body, "legacy-secret-123")


def test_reencrypt_secrets_moves_every_notifier_to_the_new_key(
    services: Services, loopback_allowed: None
) -> None:
    hook = webhook(services, "https://hooks.example.org/in", secret="rotate-me-secret")
    bell = services.notifiers.create(
        OPERATOR, "bell", "apprise", {"urls": [f"ntfys://ntfy.sh/{APPRISE_TOKEN}"]}
    )
    mail = services.notifiers.create(OPERATOR, "mail", "email", {"to": ["ops@example.org"]})
    with services.db.session() as session:  # and one stored before encryption existed
        session.add(
            Notifier(name="legacy", kind="webhook", config=json.dumps({"url": "https://x.example.org/"}))
        )
        session.commit()

    rotated = SecretBox("the-next-secret-key", previous_keys=[services.secrets.secret_key])
    with services.db.session() as session:
        assert services.notifiers.reencrypt_secrets(session, rotated) == 3  # the email has no secret
        session.commit()
    services.notifiers.secrets = rotated  # as the panel's box after the rotation

    only_new = SecretBox("the-next-secret-key")
    with services.db.session() as session:
        rows = {row.name: row for row in session.exec(select(Notifier)).all()}
    assert kinds.unseal("webhook", json.loads(rows["hook"].config), only_new)["secret"] == "rotate-me-secret"
    assert kinds.unseal("apprise", json.loads(rows["bell"].config), only_new)["urls"] == [
        f"ntfys://ntfy.sh/{APPRISE_TOKEN}"
    ]
    assert kinds.unseal("webhook", json.loads(rows["legacy"].config), only_new) == {
        "url": "https://x.example.org/"
    }
    assert json.loads(rows["legacy"].config)["url"].startswith("enc:v1:")
    with pytest.raises(SecretUnreadable):
        kinds.unseal("webhook", json.loads(rows["hook"].config), SecretBox("test-secret-key"))
    assert [v.config for v in (services.notifiers.get(hook.id), services.notifiers.get(mail.id))] == [
        {"url": "https://hooks.example.org/in", "secret_set": True},
        {"to": ["ops@example.org"]},
    ]
    assert services.notifiers.get(bell.id).config == {"urls": ["ntfys://ntfy.sh/…"]}


def test_a_secret_that_cannot_be_decrypted_fails_the_send_and_says_why(
    services: Services, http_receiver: HttpReceiver, loopback_allowed: None
) -> None:
    hook = webhook(services, http_receiver.url("/other-key"))
    queue = start_queue(services)
    queue.secrets = SecretBox("not-this-panels-key")
    try:
        result = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, hook.id).id, 10)
    finally:
        queue.stop()
    assert (result.status, result.attempts) == ("failed", 1)
    assert "cannot be decrypted with this panel's secret key" in result.last_error
    assert http_receiver.requests == []

    # Under the wrong key a rename leaves the stored config alone; a whole new config replaces it.
    right_key, services.notifiers.secrets = services.notifiers.secrets, SecretBox("not-this-panels-key")
    services.notifiers.update(OPERATOR, hook.id, name="renamed")
    with services.db.session() as session:
        stored = session.get(Notifier, hook.id)
    assert stored is not None
    assert kinds.unseal("webhook", json.loads(stored.config), right_key)["secret"] == SECRET
    with pytest.raises(Invalid, match=r"config\.url: required"):
        services.notifiers.update(OPERATOR, hook.id, config={"secret": "new"})
    services.notifiers.update(OPERATOR, hook.id, config={"url": "https://hooks.example.org/new"})
    assert services.notifiers.get(hook.id).config == {
        "url": "https://hooks.example.org/new",
        "secret_set": False,
    }


# -- the service: validation, secrets, roles, audit ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("webhook", {"url": "ftp://example.org/hook"}, "config.url: must be an http:// or https:// URL"),
        ("webhook", {"url": "https:///no-host"}, "config.url: must be an http:// or https:// URL"),
        ("webhook", {"url": "not a url"}, "config.url: must not contain spaces"),
        ("webhook", {"url": "http://example.org:99999/"}, "config.url: must be an http:// or https:// URL"),
        ("webhook", {}, "config.url: required"),
        ("webhook", {"url": "https://example.org", "token": "x"}, "config.token: unknown field"),
        ("webhook", {"url": 5}, "config.url: Input should be a valid string"),
        ("email", {"to": []}, "config.to: List should have at least 1 item"),
        ("email", {"to": ["ops@example.org", "not-an-address"]}, "config.to: Value error"),
        ("email", {"to": [f"u{i}@example.org" for i in range(21)]}, "config.to: List should have at most 20"),
        ("email", {"to": "ops@example.org"}, "config.to: Input should be a valid list"),
        ("apprise", {"urls": ["nosuchservice://abc"]}, "apprise does not recognise 'nosuchservice://…'"),
        ("apprise", {"urls": []}, "config.urls: List should have at least 1 item"),
        ("chat", {}, "unknown notifier kind 'chat'"),
    ],
)
def test_invalid_configs_are_refused_with_a_message(
    services: Services, kind: str, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(Invalid) as caught:
        services.notifiers.create(operator(services), "n", kind, config)
    assert message.replace("Value error", "") in caught.value.message or message in caught.value.message
    assert services.notifiers.list() == []


def test_invalid_email_address_names_it(services: Services) -> None:
    with pytest.raises(Invalid, match="'not-an-address' is not an email address"):
        services.notifiers.create(operator(services), "n", "email", {"to": ["not-an-address"]})


def test_names_are_checked_and_unique(services: Services) -> None:
    actor = operator(services)
    for bad in ("", "   ", "x" * 129, "two\nlines"):
        with pytest.raises(Invalid):
            services.notifiers.create(actor, bad, "email", {"to": ["ops@example.org"]})
    first = services.notifiers.create(actor, " ops ", "email", {"to": ["ops@example.org"]})
    assert first.name == "ops"
    with pytest.raises(Conflict):
        services.notifiers.create(actor, "ops", "email", {"to": ["b@example.org"]})
    other = services.notifiers.create(actor, "other", "email", {"to": ["b@example.org"]})
    with pytest.raises(Conflict):
        services.notifiers.update(actor, other.id, name="ops")
    with pytest.raises(NotFound):
        services.notifiers.update(actor, 999, name="x")


def test_secrets_are_write_only_and_an_update_without_them_keeps_them(
    services: Services, loopback_allowed: None
) -> None:
    actor = operator(services)
    hook = services.notifiers.create(
        actor,
        "hook",
        "webhook",
        {"url": "https://user:pw-in-url@hooks.example.org/in?key=qs-secret", "secret": SECRET},
    )
    assert hook.config == {"url": "https://user:…@hooks.example.org/in?…", "secret_set": True}
    # a token in the path (Slack, Discord, Home Assistant) is masked like the rest
    discord = services.notifiers.create(
        actor, "discord", "webhook", {"url": "https://discord.com/api/webhooks/123/path-T0KEN-abc"}
    )
    assert discord.config == {"url": "https://discord.com/api/…/123/…", "secret_set": False}
    services.notifiers.delete(actor, discord.id)
    slack = f"slack://T1JJ3T3L2/A1BRTD4JD/{SLACK_TOKEN}"
    ntfy = "ntfys://ntfy.example.org/private-topic-name"
    bell = services.notifiers.create(actor, "bell", "apprise", {"urls": [slack, ntfy]})
    assert bell.config == {"urls": ["slack://…", "ntfys://ntfy.example.org/…"]}

    # Renaming, or sending the config back as shown, keeps every secret.
    services.notifiers.update(actor, hook.id, name="hook 2", config=hook.config)
    services.notifiers.update(actor, hook.id, config={"url": "https://user:…@hooks.example.org/in?…"})
    services.notifiers.update(actor, bell.id, config={"urls": [*bell.config["urls"], "json://127.0.0.1:9/x"]})
    with services.db.session() as session:
        stored_hook = session.get(Notifier, hook.id)
        stored_bell = session.get(Notifier, bell.id)
    assert stored_hook is not None and stored_bell is not None
    assert SECRET not in stored_hook.config and SLACK_TOKEN not in stored_bell.config  # encrypted
    assert kinds.unseal("webhook", json.loads(stored_hook.config), services.secrets) == {
        "url": "https://user:pw-in-url@hooks.example.org/in?key=qs-secret",
        "secret": SECRET,
    }
    assert kinds.unseal("apprise", json.loads(stored_bell.config), services.secrets)["urls"] == [
        slack,
        ntfy,
        "json://127.0.0.1:9/x",
    ]

    # A null secret removes it; a masked value that matches nothing is refused.
    cleared = services.notifiers.update(actor, hook.id, config={"secret": None})
    assert cleared.config["secret_set"] is False
    with pytest.raises(Invalid, match="masked"):
        services.notifiers.update(actor, bell.id, config={"urls": ["discord://…"]})

    shown = json.dumps([v.__dict__ for v in services.notifiers.list()], default=str)
    events = json.dumps([e.details for e in audit_events(services)])
    for secret in (SECRET, SLACK_TOKEN, "pw-in-url", "qs-secret", "private-topic-name", "path-T0KEN-abc"):
        assert secret not in shown
        assert secret not in events
    assert [e.action for e in audit_events(services)] == [
        "notifier.create",
        "notifier.create",
        "notifier.delete",
        "notifier.create",
        "notifier.update",
        "notifier.update",
        "notifier.update",
    ]


def test_a_kind_change_needs_a_whole_config(services: Services) -> None:
    actor = operator(services)
    mail = services.notifiers.create(actor, "mail", "email", {"to": ["ops@example.org"]})
    with pytest.raises(Invalid, match="needs a config"):
        services.notifiers.update(actor, mail.id, kind="webhook")
    changed = services.notifiers.update(
        actor, mail.id, kind="webhook", config={"url": "https://example.org/h"}
    )
    assert changed.kind == "webhook" and changed.config == {
        "url": "https://example.org/h",
        "secret_set": False,
    }


def test_viewers_cannot_change_notifiers_and_the_refusal_is_audited(services: Services) -> None:
    viewer = VIEWER
    with pytest.raises(Forbidden):
        services.notifiers.create(viewer, "n", "email", {"to": ["ops@example.org"]})
    mail = services.notifiers.create(ADMIN, "n", "email", {"to": ["ops@example.org"]})
    for attempt in (
        lambda: services.notifiers.update(viewer, mail.id, name="m"),
        lambda: services.notifiers.delete(viewer, mail.id),
        lambda: services.notifiers.send_test(viewer, mail.id),
    ):
        with pytest.raises(Forbidden):
            attempt()
    denied = audit_events(services, "access.denied")
    assert [json.loads(e.details)["attempted"] for e in denied] == [
        "notifier.create",
        "notifier.update",
        "notifier.delete",
        "notifier.test",
    ]
    assert services.notifiers.get(mail.id).name == "n"


def test_create_update_delete_are_audited(services: Services) -> None:
    actor = operator(services)
    mail = services.notifiers.create(actor, "mail", "email", {"to": ["ops@example.org"]}, ip="198.51.100.7")
    services.notifiers.update(actor, mail.id, config={"to": ["ops@example.org", "b@example.org"]})
    services.notifiers.delete(actor, mail.id)
    events = audit_events(services)
    assert [(e.action, e.actor_name, e.target_id, e.outcome) for e in events] == [
        ("notifier.create", "olga", str(mail.id), "success"),
        ("notifier.update", "olga", str(mail.id), "success"),
        ("notifier.delete", "olga", str(mail.id), "success"),
    ]
    assert events[0].source_ip == "198.51.100.7"
    assert json.loads(events[1].details)["changed"] == ["config.to"]
    assert services.notifiers.list() == []
    with pytest.raises(NotFound):
        services.notifiers.get(mail.id)


# -- the API -------------------------------------------------------------------------------------------


@pytest.fixture
def operator_headers(api: TestClient) -> dict[str, str]:
    return bearer(api, "olga", OPERATOR_PASSWORD)


@pytest.fixture
def viewer_headers(api: TestClient) -> dict[str, str]:
    return bearer(api, "victor", VIEWER_PASSWORD)


def test_api_crud_with_secrets_never_returned(
    api: TestClient, operator_headers: dict[str, str], viewer_headers: dict[str, str], services: Services
) -> None:
    body = {
        "name": "hook",
        "kind": "webhook",
        "config": {"url": "https://hooks.example.org/a", "secret": SECRET},
    }
    created = api.post("/api/v1/notifiers", json=body, headers=operator_headers)
    assert created.status_code == 201, created.text
    notifier = created.json()
    assert notifier["config"] == {"url": "https://hooks.example.org/a", "secret_set": True}
    nid = notifier["id"]

    assert api.post("/api/v1/notifiers", json=body, headers=operator_headers).status_code == 409
    listed = api.get("/api/v1/notifiers", headers=operator_headers)
    assert listed.status_code == 200 and [n["name"] for n in listed.json()] == ["hook"]
    assert api.get(f"/api/v1/notifiers/{nid}", headers=operator_headers).json()["name"] == "hook"
    assert api.get("/api/v1/notifiers/999", headers=operator_headers).status_code == 404
    assert api.get("/api/v1/notifiers", headers=viewer_headers).status_code == 403
    assert api.get(f"/api/v1/notifiers/{nid}", headers=viewer_headers).status_code == 403

    patched = api.patch(f"/api/v1/notifiers/{nid}", json={"name": "pager"}, headers=operator_headers)
    assert patched.status_code == 200 and patched.json()["config"]["secret_set"] is True

    admin_headers = bearer(api, "admin", ADMIN_PASSWORD)
    everything = [
        created.text,
        listed.text,
        patched.text,
        api.get("/api/v1/audit?action=notifier", headers=admin_headers).text,
    ]
    assert all(SECRET not in text for text in everything)

    assert api.delete(f"/api/v1/notifiers/{nid}", headers=operator_headers).status_code == 204
    assert api.get(f"/api/v1/notifiers/{nid}", headers=operator_headers).status_code == 404
    assert api.delete(f"/api/v1/notifiers/{nid}", headers=operator_headers).status_code == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"name": "h", "kind": "webhook", "config": {"url": "gopher://x"}}, "config.url: must be an http"),
        ({"name": "h", "kind": "email", "config": {"to": ["nope"]}}, "is not an email address"),
        ({"name": "h", "kind": "pager", "config": {}}, "unknown notifier kind"),
        ({"name": "h", "kind": "apprise", "config": {"urls": ["zzz://q"]}}, "apprise does not recognise"),
    ],
)
def test_api_invalid_input_is_422_with_a_message(
    api: TestClient, operator_headers: dict[str, str], body: dict[str, Any], detail: str
) -> None:
    response = api.post("/api/v1/notifiers", json=body, headers=operator_headers)
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_api_body_is_exactly_name_kind_config(api: TestClient, operator_headers: dict[str, str]) -> None:
    extra = {"name": "h", "kind": "email", "config": {"to": ["a@example.org"]}, "enabled": True}
    assert api.post("/api/v1/notifiers", json=extra, headers=operator_headers).status_code == 422
    missing = {"name": "h", "kind": "email"}
    assert api.post("/api/v1/notifiers", json=missing, headers=operator_headers).status_code == 422
    not_object = {"name": "h", "kind": "email", "config": ["a@example.org"]}
    assert api.post("/api/v1/notifiers", json=not_object, headers=operator_headers).status_code == 422


def test_api_viewers_get_403_on_every_write(
    api: TestClient, viewer_headers: dict[str, str], services: Services
) -> None:
    mail = services.notifiers.create(PANEL, "mail", "email", {"to": ["a@example.org"]})
    body = {"name": "x", "kind": "email", "config": {"to": ["a@example.org"]}}
    assert api.post("/api/v1/notifiers", json=body, headers=viewer_headers).status_code == 403
    assert (
        api.patch(f"/api/v1/notifiers/{mail.id}", json={"name": "y"}, headers=viewer_headers).status_code
        == 403
    )
    assert api.delete(f"/api/v1/notifiers/{mail.id}", headers=viewer_headers).status_code == 403
    assert api.post(f"/api/v1/notifiers/{mail.id}/test", headers=viewer_headers).status_code == 403


def test_api_test_reports_the_outcome_and_the_delivery_log_shows_it(
    api: TestClient,
    operator_headers: dict[str, str],
    viewer_headers: dict[str, str],
    services: Services,
    queue: DeliveryQueue,
    http_receiver: HttpReceiver,
    closed_port: int,
) -> None:
    good = webhook(services, http_receiver.url("/t"), name="good")
    bad = webhook(services, f"http://127.0.0.1:{closed_port}/t", name="bad")

    sent = api.post(f"/api/v1/notifiers/{good.id}/test", headers=operator_headers)
    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["event"], sent.json()["attempts"]) == ("sent", "test", 1)
    [request] = http_receiver.requests
    assert request.json()["rule"] == "Test notification" and request.header("X-Nox-Event") == "test"

    failed = api.post(f"/api/v1/notifiers/{bad.id}/test", headers=operator_headers)
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed" and failed.json()["attempts"] == 1
    assert "ConnectError" in failed.json()["error"]

    log = api.get(f"/api/v1/notifiers/{bad.id}/deliveries", headers=operator_headers).json()
    assert [(d["id"], d["status"], d["notifier_name"]) for d in log] == [
        (failed.json()["id"], "failed", "bad")
    ]
    everything = api.get("/api/v1/deliveries", headers=operator_headers).json()
    assert [d["notifier_name"] for d in everything] == ["bad", "good"]
    one = api.get(f"/api/v1/deliveries/{sent.json()['id']}", headers=operator_headers)
    assert one.json()["status"] == "sent"
    assert api.get("/api/v1/deliveries/424242", headers=operator_headers).status_code == 404
    assert [e.action for e in audit_events(services, "notifier.test")] == ["notifier.test"] * 2


def test_api_test_without_waiting_is_202_pending(
    api: TestClient, operator_headers: dict[str, str], services: Services
) -> None:
    mail = services.notifiers.create(PANEL, "mail", "email", {"to": ["a@example.org"]})
    response = api.post(f"/api/v1/notifiers/{mail.id}/test?wait=0", headers=operator_headers)
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert api.post("/api/v1/notifiers/999/test", headers=operator_headers).status_code == 404


def test_deliveries_filter_by_alert(
    api: TestClient,
    operator_headers: dict[str, str],
    services: Services,
    queue: DeliveryQueue,
    http_receiver: HttpReceiver,
) -> None:
    hook = webhook(services, http_receiver.url("/a"))
    first, second = make_alert(services, rule_name="one"), make_alert(services, rule_name="two")
    services.notifiers.dispatch(message_for(services, first), [hook.id])
    services.notifiers.dispatch(message_for(services, second), [hook.id])
    settled(services, 2)
    rows = api.get(f"/api/v1/deliveries?alert_id={second.id}", headers=operator_headers).json()
    assert [(d["alert_id"], d["status"], d["event"]) for d in rows] == [(second.id, "sent", "firing")]
    views: list[DeliveryView] = services.notifiers.deliveries_for_alert(first.id or 0)
    assert [v.alert_id for v in views] == [first.id]
