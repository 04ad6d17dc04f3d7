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
  the status answered); `fail_next(n, status)` answers the next n requests with an error.
- `unused_port()` / `closed_port`: a loopback port nothing listens on (an unreachable receiver).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# -- SMTP -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes

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
        )
        with self.receiver.lock:
            self.receiver.messages.append(mail)
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on loopback in its own thread; `with SmtpReceiver() as smtp: smtp.port`."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.port = unused_port()
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


class HttpReceiver:
    """A stdlib HTTP server on loopback that records every request; `with HttpReceiver() as hook:`.

    `port` may be given, e.g. to bring up a receiver where a notifier pointed at a closed port."""

    def __init__(self, port: int = 0) -> None:
        self.lock = threading.Lock()
        self._behaviour = _Behaviour()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
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
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self._behaviour.answered)

    @property
    def accepted(self) -> list[ReceivedRequest]:
        """The requests answered with a success."""
        return [r for r in self.requests if r.status < 400]

    def fail_next(self, count: int, status: int = 500) -> None:
        with self.lock:
            self._behaviour.failures_left = count
            self._behaviour.failure_status = status

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


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
