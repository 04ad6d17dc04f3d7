"""Real servers on loopback for notification tests: an SMTP server (aiosmtpd) and an HTTP receiver.

Use them as context managers or as pytest fixtures (import the fixture names into a test module):

    from tests import receivers

    http_receiver = receivers.http_receiver  # or: pytest_plugins = ["tests.receivers"] in conftest.py

    def test_something(http_receiver: HttpReceiver) -> None:
        http_receiver.fail_next(2)                    # answer 500 twice, then 200
        ... POST to http_receiver.url("/hook") ...
        wait_until(lambda: len(http_receiver.requests) == 3)

- `SmtpReceiver`: collects every message (`messages`: parsed `email.message.EmailMessage`s with their
  envelope); optionally offers AUTH LOGIN/PLAIN for one user name and password (no TLS needed) and
  records each successful login in `logins`.
- `HttpReceiver`: records every request (`requests`: method, path, headers, raw body, arrival time,
  the status answered); `fail_next(n, status)` answers the next n requests with an error; `hold()`
  keeps every request waiting for its answer (`held` counts them) until `release()`.
- `unused_port()` / `closed_port`: a loopback port nothing listens on (an unreachable receiver).
- `make_certificates(directory)`: a test CA and a certificate it signed for 127.0.0.1, made at test time
  with `cryptography`; `make_certificates(directory, self_signed=True)`: a certificate no CA signed.
  `SmtpReceiver(starttls=certs)` offers (and requires) STARTTLS, `SmtpReceiver(implicit_tls=certs)`
  speaks TLS from the start (SMTPS), `HttpReceiver(tls=certs)` is an HTTPS receiver.
- `Hanger`: accepts connections and never answers (until `release()`): a receiver that hangs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOOPBACK = "127.0.0.1"


def unused_port() -> int:
    """A loopback TCP port that nothing listens on (free at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# -- certificates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files: `ca_file` is what a client is told to trust; `cert_file`/`key_file` the server's."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path, *, self_signed: bool = False) -> Certificates:
    """A test CA and a server certificate for 127.0.0.1 and localhost signed by it; with `self_signed`, a
    server certificate signed by its own key (and `ca_file` is that certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = name("nox test receiver")
    if self_signed:
        issuer_key, issuer_name = server_key, server_name
    else:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_name = name("nox test CA")
        ca = (
            x509.CertificateBuilder()
            .subject_name(issuer_name)
            .issuer_name(issuer_name)
            .public_key(issuer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
    server = (
        x509.CertificateBuilder()
        .subject_name(server_name)
        .issuer_name(issuer_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    certs = Certificates(
        ca_file=directory / "ca.pem", cert_file=directory / "server.pem", key_file=directory / "server.key"
    )
    certs.ca_file.write_bytes(pem(server if self_signed else ca))
    certs.cert_file.write_bytes(pem(server))
    certs.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certs


# -- SMTP -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool  # the message came over an encrypted connection (STARTTLS or SMTPS)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class _Collector:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=[str(r) for r in envelope.rcpt_tos],
            message=parsed,
            raw=raw,
            tls=server.transport is not None and server.transport.get_extra_info("ssl_object") is not None,
        )
        with self.receiver.lock:
            self.receiver.messages.append(mail)
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on loopback in its own thread; `with SmtpReceiver() as smtp: smtp.port`.

    `starttls`: STARTTLS is offered with that certificate and required before a message is taken;
    `implicit_tls`: TLS from the first byte (SMTPS; give `port`, e.g. 465, which the panel reads as SMTPS)."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        port: int | None = None,
        starttls: Certificates | None = None,
        implicit_tls: Certificates | None = None,
    ) -> None:
        self.port = port or unused_port()
        self.host = LOOPBACK
        self.messages: list[ReceivedMail] = []
        self.logins: list[str] = []
        self.lock = threading.Lock()
        self._credentials = (username, password) if username is not None else None
        kwargs: dict[str, Any] = {}
        if self._credentials is not None:
            # AUTH is offered without TLS on loopback; a wrong password is refused (a client that skips
            # AUTH altogether would still be let through: aiosmtpd warns against requiring it without TLS).
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        if starttls is not None:
            kwargs |= {"tls_context": starttls.server_context(), "require_starttls": True}
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls.server_context()
        self._controller = Controller(
            _Collector(self), hostname=LOOPBACK, port=self.port, ready_timeout=5.0, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self._credentials is not None:
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self._credentials:
                with self.lock:
                    self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- HTTP -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int  # what the receiver answered

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Behaviour:
    failures_left: int = 0
    failure_status: int = 500
    answered: list[ReceivedRequest] = field(default_factory=list)
    held: int = 0


class HttpReceiver:
    """A stdlib HTTP server on loopback that records every request; `with HttpReceiver() as hook:`.

    `port` may be given, e.g. to bring up a receiver where a notifier pointed at a closed port; with
    `tls`, it is an HTTPS receiver presenting that certificate."""

    def __init__(self, port: int = 0, *, tls: Certificates | None = None) -> None:
        self.lock = threading.Lock()
        self._behaviour = _Behaviour()
        self._gate = threading.Event()
        self._gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not receiver._gate.is_set():
                    with receiver.lock:
                        receiver._behaviour.held += 1
                    receiver._gate.wait(30.0)
                with receiver.lock:
                    behaviour = receiver._behaviour
                    status = 200
                    if behaviour.failures_left > 0:
                        behaviour.failures_left -= 1
                        status = behaviour.failure_status
                    behaviour.answered.append(
                        ReceivedRequest(
                            method=self.command,
                            path=self.path,
                            headers=dict(self.headers.items()),
                            body=body,
                            at=time.monotonic(),
                            status=status,
                        )
                    )
                answer = b'{"ok": true}' if status < 400 else b'{"error": "told to fail"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                return None

        self._server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            # The handshake happens on accept; one that fails (an untrusting client) drops that connection.
            self._server.socket = tls.server_context().wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True)

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self._behaviour.answered)

    @property
    def accepted(self) -> list[ReceivedRequest]:
        """The requests answered with a success."""
        return [r for r in self.requests if r.status < 400]

    @property
    def held(self) -> int:
        """How many requests arrived while held (they wait for `release`)."""
        with self.lock:
            return self._behaviour.held

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self._behaviour.failures_left = count
            self._behaviour.failure_status = status

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._gate.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- a receiver that hangs -----------------------------------------------------------------------------


class Hanger:
    """A TCP server on loopback that accepts every connection and never answers (no HTTP status, no SMTP
    greeting) until `release()`; `connections` counts what it accepted."""

    def __init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="hanger", daemon=True)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._held)

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._released.is_set():
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(conn)

    def release(self) -> None:
        self._released.set()
        self._listener.close()
        with self._lock:
            for conn in self._held:
                conn.close()

    def __enter__(self) -> Hanger:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as server:
        yield server


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def closed_port() -> int:
    return unused_port()
