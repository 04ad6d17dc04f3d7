"""Notifiers and the delivery queue against real servers on loopback: an SMTP server (aiosmtpd), an HTTP
receiver, apprise's json:// plugin posting to that receiver, and a closed port for an unreachable hook."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from sqlmodel import select

from nox_ui.alerts.messages import AlertMessage
from nox_ui.alerts.notify import DeliveryQueue, DeliveryView, NotifierView
from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden, Invalid, NotFound
from nox_ui.models import Alert, AlertRule, AuditEvent, Delivery, Notifier
from nox_ui.roles import Principal, Role
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer
from tests.receivers import HttpReceiver, SmtpReceiver, wait_until

SECRET = "hook-S3CRET-value"
APPRISE_TOKEN = "tok3nInPath-9f8e7d"
SLACK_TOKEN = "TIiajkdnlazkcOXrIdevi7FQ"
BACKOFF = 0.05
MAX_ATTEMPTS = 4


# -- helpers -------------------------------------------------------------------------------------------


@pytest.fixture
def queue(services: Services) -> Iterator[DeliveryQueue]:
    """A fast queue (0.05 s backoff, 4 attempts) in place of the default one, running."""
    fast = DeliveryQueue(
        services.db,
        lambda: services.config.current,
        link=services.notifiers.alert_link,
        backoff=BACKOFF,
        backoff_max=1.0,
        max_attempts=MAX_ATTEMPTS,
        timeout=3.0,
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
            labels=json.dumps({"mount": "/"}),
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
        labels=json.loads(alert.labels),
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
    services.config.update(
        None,
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

        services.config.update(None, {"smtp_password": "right-mail-pass"})
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
    result = services.notifiers.wait_for_delivery(services.notifiers.send_test(None, notifier.id).id, 10)
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
    assert [line.split(": ", 1)[1] for line in row.error.splitlines()] == [
        'HTTP 503 Service Unavailable: {"error": "told to fail"}'
    ] * 2
    arrivals = [r.at for r in http_receiver.requests]
    assert arrivals[1] - arrivals[0] >= BACKOFF - 0.002
    assert arrivals[2] - arrivals[1] >= 2 * BACKOFF - 0.002


def test_pending_deliveries_survive_a_restart_of_the_queue(
    services: Services, queue: DeliveryQueue, closed_port: int
) -> None:
    hook = webhook(services, f"http://127.0.0.1:{closed_port}/later")
    alert = make_alert(services)
    slow = DeliveryQueue(
        services.db, lambda: services.config.current, link=services.notifiers.alert_link, backoff=60.0
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
    services: Services, http_receiver: HttpReceiver
) -> None:
    hook = webhook(services, http_receiver.url("/hook"))
    message = message_for(services, make_alert(services))
    notifiers = services.notifiers
    started = time.monotonic()
    notifiers.dispatch(message, [hook.id, 987654, hook.id])  # the worker is not running yet
    assert time.monotonic() - started < 0.05
    assert deliveries(services) == []
    notifiers.queue.start()
    try:
        [row] = settled(services)
    finally:
        notifiers.queue.stop()
    assert row.status == "sent" and row.notifier_id == hook.id
    assert len(http_receiver.requests) == 1


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


def test_secrets_are_write_only_and_an_update_without_them_keeps_them(services: Services) -> None:
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
    assert json.loads(stored_hook.config) == {
        "url": "https://user:pw-in-url@hooks.example.org/in?key=qs-secret",
        "secret": SECRET,
    }
    assert json.loads(stored_bell.config)["urls"] == [slack, ntfy, "json://127.0.0.1:9/x"]

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
    listed = api.get("/api/v1/notifiers", headers=viewer_headers)
    assert listed.status_code == 200 and [n["name"] for n in listed.json()] == ["hook"]
    assert api.get(f"/api/v1/notifiers/{nid}", headers=viewer_headers).json()["name"] == "hook"
    assert api.get("/api/v1/notifiers/999", headers=viewer_headers).status_code == 404

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
    assert api.get(f"/api/v1/notifiers/{nid}", headers=viewer_headers).status_code == 404
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
    mail = services.notifiers.create(None, "mail", "email", {"to": ["a@example.org"]})
    body = {"name": "x", "kind": "email", "config": {"to": ["a@example.org"]}}
    assert api.post("/api/v1/notifiers", json=body, headers=viewer_headers).status_code == 403
    assert (
        api.patch(f"/api/v1/notifiers/{mail.id}", json={"name": "y"}, headers=viewer_headers).status_code
        == 403
    )
    assert api.delete(f"/api/v1/notifiers/{mail.id}", headers=viewer_headers).status_code == 403
    assert api.post(f"/api/v1/notifiers/{mail.id}/test", headers=viewer_headers).status_code == 403
    assert api.get(f"/api/v1/notifiers/{mail.id}/deliveries", headers=viewer_headers).status_code == 200


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

    log = api.get(f"/api/v1/notifiers/{bad.id}/deliveries", headers=viewer_headers).json()
    assert [(d["id"], d["status"], d["notifier_name"]) for d in log] == [
        (failed.json()["id"], "failed", "bad")
    ]
    everything = api.get("/api/v1/deliveries", headers=viewer_headers).json()
    assert [d["notifier_name"] for d in everything] == ["bad", "good"]
    one = api.get(f"/api/v1/deliveries/{sent.json()['id']}", headers=viewer_headers)
    assert one.json()["status"] == "sent"
    assert api.get("/api/v1/deliveries/424242", headers=viewer_headers).status_code == 404
    assert [e.action for e in audit_events(services, "notifier.test")] == ["notifier.test"] * 2


def test_api_test_without_waiting_is_202_pending(
    api: TestClient, operator_headers: dict[str, str], services: Services
) -> None:
    mail = services.notifiers.create(None, "mail", "email", {"to": ["a@example.org"]})
    response = api.post(f"/api/v1/notifiers/{mail.id}/test?wait=0", headers=operator_headers)
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert api.post("/api/v1/notifiers/999/test", headers=operator_headers).status_code == 404


def test_deliveries_filter_by_alert(
    api: TestClient,
    viewer_headers: dict[str, str],
    services: Services,
    queue: DeliveryQueue,
    http_receiver: HttpReceiver,
) -> None:
    hook = webhook(services, http_receiver.url("/a"))
    first, second = make_alert(services, rule_name="one"), make_alert(services, rule_name="two")
    services.notifiers.dispatch(message_for(services, first), [hook.id])
    services.notifiers.dispatch(message_for(services, second), [hook.id])
    settled(services, 2)
    rows = api.get(f"/api/v1/deliveries?alert_id={second.id}", headers=viewer_headers).json()
    assert [(d["alert_id"], d["status"], d["event"]) for d in rows] == [(second.id, "sent", "firing")]
    views: list[DeliveryView] = services.notifiers.deliveries_for_alert(first.id or 0)
    assert [v.alert_id for v in views] == [first.id]
