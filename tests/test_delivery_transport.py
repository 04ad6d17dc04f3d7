"""Deliveries over the transports a user meets, against real servers on loopback: email with STARTTLS
(the default) and SMTPS, an HTTPS webhook, a receiver that hangs and one that redirects.

TLS is verified: the test CA made here is trusted the standard way the panel's TLS clients read
(`SSL_CERT_FILE` in the environment, read when a connection's TLS context is made), and a certificate
that CA did not sign fails the delivery with the verifier's reason. The certificates are made at test
time with `cryptography`."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nox_ui.alerts.notify import DeliveryQueue, DeliveryView
from nox_ui.app import Services
from nox_ui.roles import PANEL
from nox_ui.runtime_settings import RuntimeSettings
from tests.receivers import (
    LOOPBACK,
    Certificates,
    Hanger,
    HttpReceiver,
    SmtpReceiver,
    make_certificates,
    wait_until,
)
from tests.test_notify import (
    MAX_ATTEMPTS,
    allow_loopback,
    deliveries,
    make_alert,
    message_for,
    operator,
    settled,
    use_smtp,
    webhook,
)
from tests.test_outbound import Redirector

TIMEOUT = 2.0  # the queue's per-send timeout here: what a hanging receiver runs into
UNTRUSTED = "TLS certificate not accepted: self-signed certificate (SSLCertVerificationError)"


@pytest.fixture
def trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    """A test CA the panel trusts (through SSL_CERT_FILE), and a server certificate it signed."""
    certs = make_certificates(tmp_path / "trusted")
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certs


@pytest.fixture
def untrusted(tmp_path: Path, trusted: Certificates) -> Certificates:
    """A self-signed server certificate: not signed by the CA the panel trusts."""
    return make_certificates(tmp_path / "untrusted", self_signed=True)


@pytest.fixture
def queue(services: Services, trusted: Certificates) -> Iterator[DeliveryQueue]:
    """A running queue with a short send timeout, made after SSL_CERT_FILE is set; 127.0.0.1 allowed."""
    allow_loopback(services)
    fast = DeliveryQueue(
        services.db,
        lambda: services.settings.current,
        link=services.notifiers.alert_link,
        backoff=0.05,
        backoff_max=1.0,
        max_attempts=MAX_ATTEMPTS,
        timeout=TIMEOUT,
        secrets=services.secrets,
    )
    services.notifiers.queue = fast
    fast.start()
    yield fast
    fast.stop()


def smtps_port() -> int:
    """465: the port the panel reads as SMTPS (TLS from the start). Skipped where it cannot be had."""
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, 465))
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else "not allowed for this user"
            pytest.skip(f"SMTPS needs 127.0.0.1:465 (the panel reads port 465 as SMTPS): {reason}")
    return 465


def send_one(services: Services, notifier_id: int) -> DeliveryView:
    """Send a test message (one attempt) and wait for its outcome."""
    return services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, notifier_id).id, 30)


def email_notifier(services: Services) -> int:
    return services.notifiers.create(operator(services), "mail", "email", {"to": ["ops@example.org"]}).id


# -- email ---------------------------------------------------------------------------------------------


def test_starttls_is_the_default() -> None:
    assert RuntimeSettings().smtp_starttls is True


@pytest.mark.parametrize(
    ("server_certs", "sent"), [("trusted", True), ("untrusted", False)], ids=["trusted", "untrusted"]
)
def test_email_over_starttls_needs_a_certificate_the_panel_trusts(
    services: Services,
    queue: DeliveryQueue,
    request: pytest.FixtureRequest,
    server_certs: str,
    sent: bool,
) -> None:
    certs: Certificates = request.getfixturevalue(server_certs)
    with SmtpReceiver(starttls=certs) as smtp:  # STARTTLS offered and required before MAIL
        use_smtp(services, smtp, smtp_starttls=True)
        result = send_one(services, email_notifier(services))
    if sent:
        assert result.status == "sent", result.error
        [mail] = smtp.messages
        assert mail.tls and mail.rcpt_tos == ["ops@example.org"]
    else:
        assert result.status == "failed"
        assert result.last_error.startswith(UNTRUSTED)
        assert "SSL_CERT_FILE" in result.last_error  # how to trust a private CA
        assert smtp.messages == []


@pytest.mark.parametrize(
    ("server_certs", "sent"), [("trusted", True), ("untrusted", False)], ids=["trusted", "untrusted"]
)
def test_email_over_smtps_on_port_465_needs_a_certificate_the_panel_trusts(
    services: Services,
    queue: DeliveryQueue,
    request: pytest.FixtureRequest,
    server_certs: str,
    sent: bool,
) -> None:
    port = smtps_port()
    certs: Certificates = request.getfixturevalue(server_certs)
    with SmtpReceiver(port=port, implicit_tls=certs) as smtp:
        use_smtp(services, smtp, smtp_starttls=True)  # ignored on 465: TLS from the first byte
        result = send_one(services, email_notifier(services))
    if sent:
        assert result.status == "sent", result.error
        [mail] = smtp.messages
        assert mail.tls
    else:
        assert result.status == "failed"
        assert result.last_error.startswith(UNTRUSTED)
        assert smtp.messages == []


def test_an_smtp_server_that_never_greets_times_out_with_a_readable_error(
    services: Services, queue: DeliveryQueue
) -> None:
    with Hanger() as hang:
        services.settings.update(
            PANEL, {"smtp_host": LOOPBACK, "smtp_port": hang.port, "smtp_from": "nox@example.org"}
        )
        result = send_one(services, email_notifier(services))
        assert hang.connections == 1
    assert result.status == "failed"
    assert result.last_error == "SMTPServerDisconnected: Connection unexpectedly closed: timed out"


# -- webhooks ------------------------------------------------------------------------------------------


def test_an_https_webhook_signed_by_a_trusted_ca_is_delivered(
    services: Services, queue: DeliveryQueue, trusted: Certificates
) -> None:
    with HttpReceiver(tls=trusted) as receiver:
        hook = webhook(services, receiver.url("/hook"))
        result = send_one(services, hook.id)
    assert result.status == "sent", result.error
    [received] = receiver.requests
    assert received.path == "/hook" and received.json()["rule"] == "Test notification"


def test_an_https_webhook_with_an_untrusted_certificate_fails_and_sends_nothing(
    services: Services, queue: DeliveryQueue, untrusted: Certificates
) -> None:
    with HttpReceiver(tls=untrusted) as receiver:
        hook = webhook(services, receiver.url("/hook"))
        result = send_one(services, hook.id)
    assert result.status == "failed"
    assert result.last_error.startswith(UNTRUSTED)
    assert receiver.requests == []


def test_a_hanging_webhook_times_out_with_a_readable_error_and_the_queue_goes_on(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    with Hanger() as hang:
        hung = webhook(services, hang.url("/hook"), name="hung")
        good = webhook(services, http_receiver.url("/hook"), name="good")
        hung_test = services.notifiers.send_test(PANEL, hung.id)
        wait_until(lambda: hang.connections == 1)  # the hung send is in progress
        # the queue goes on while it hangs: an alert to the working receiver is delivered
        services.notifiers.dispatch(message_for(services, make_alert(services)), [good.id])
        wait_until(lambda: http_receiver.accepted)
        result = services.notifiers.wait_for_delivery(hung_test.id, 30)
    assert result.status == "failed"
    assert result.last_error == "timed out (ReadTimeout)"
    # and after the timeout too
    assert send_one(services, good.id).status == "sent"


def test_a_redirecting_webhook_is_not_followed_and_every_attempt_is_recorded(
    services: Services, queue: DeliveryQueue, http_receiver: HttpReceiver
) -> None:
    with Redirector(http_receiver.url("/elsewhere"), status=307) as redirector:
        hook = webhook(services, redirector.url("/hook"))
        services.notifiers.dispatch(message_for(services, make_alert(services)), [hook.id])
        [row] = settled(services)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    lines = row.error.splitlines()
    assert len(lines) == MAX_ATTEMPTS
    assert all(line.endswith(": HTTP 307 Temporary Redirect (redirects are not followed)") for line in lines)
    assert redirector.hits == MAX_ATTEMPTS and http_receiver.requests == []
    assert [d.status for d in deliveries(services)] == ["failed"]
