"""What every notifier kind shares: delivery errors, URL checks and masks, scrubbing secrets, the
message text, the webhook body and signature, and keeping secrets out of the transport libraries' logs.

The kinds themselves (their configs, public views, secrets, sending) live in `nox_ui/alerts/kinds/`,
one module each, listed in its registry; nothing here names a kind.

Every connection goes through the `OutboundGuard` (nox_ui/outbound.py): a saved target that is
internal as written (an IP literal, `localhost`) is refused at once (`NotifierKind.check_targets`),
names are checked when resolved at send time. The delivery log keeps what went wrong as a status code
or an error class, never the text a target answered.

Apprise is imported on first use (it loads ~190 plugins) and its own logger is kept out of the panel's
logs: at DEBUG it prints full service URLs, and its error for an unparseable URL echoes the URL.
What it says about a failed send is captured into the delivery log instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import ipaddress
import json
import logging
import re
import ssl
import warnings
from collections.abc import Iterable
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

from nox_ui import __version__, parsing
from nox_ui.alerts.messages import AlertMessage
from nox_ui.errors import Invalid
from nox_ui.outbound import ALLOW_HINT, OutboundRefused

MASK = "…"
MAX_URL = 2048
MAX_SECRET = 512
MAX_RECIPIENTS = 20
MAX_APPRISE_URLS = 20
USER_AGENT = f"nox-ui/{__version__}"
SIGNATURE_HEADER = "X-Nox-Signature"
EVENT_HEADER = "X-Nox-Event"
DELIVERY_HEADER = "X-Nox-Delivery"

TRUST_HINT = "a private CA is trusted through SSL_CERT_FILE or SSL_CERT_DIR in the panel's environment"

_HOSTNAME_RE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$|^localhost$")


class DeliveryError(Exception):
    """A send that did not go through; the message is what the delivery log shows. `permanent`: trying
    again cannot help (a refused target, an unreadable secret)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def refusal_text(refused: OutboundRefused) -> str:
    return f"refused by the outbound guard: {refused.detail}; {ALLOW_HINT}"


def error_class(exc: BaseException) -> str:
    """`ConnectError (ConnectionRefusedError)`: the class of an error and of its root cause, never their
    text, which may quote what the target sent (a banner, a malformed status line)."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    name = type(exc).__name__
    if root is not exc and type(root).__name__ != name and not type(root).__module__.startswith("httpcore"):
        name += f" ({type(root).__name__})"
    return name


def certificate_refusal(exc: BaseException) -> str | None:
    """`TLS certificate not accepted: <why> (SSLCertVerificationError)` when `exc` comes from a server
    certificate this machine does not trust (or that names another host); None otherwise. The reason is
    the local verifier's, never text the target sent."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or "certificate verify failed"
            return f"TLS certificate not accepted: {why} ({type(cause).__name__}); {TRUST_HINT}"
        cause = cause.__cause__ or cause.__context__
    return None


# -- checks and masks ------------------------------------------------------------------------------


def _no_control(value: str) -> bool:
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def check_http_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    if not _no_control(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    if MASK in value:
        raise ValueError("looks like a masked URL; give the full URL, or leave it out to keep the stored one")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError:
        raise ValueError(
            "must be an http:// or https:// URL with a host, e.g. https://example.org/hook"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://example.org/hook")
    return value


def check_email(value: str) -> str:
    """The panel's one email rule, as the ValueError pydantic validators expect."""
    try:
        return parsing.check_email(value, "to")
    except Invalid as exc:
        raise ValueError(str(exc)) from None


def _apprise() -> ModuleType:
    """apprise, imported on first use. Its PGP helper, loaded late by some plugins, imports `imghdr`,
    which warns (DeprecationWarning) on Python 3.11+; it is loaded here, once, with that silenced."""
    _quiet_apprise()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        with contextlib.suppress(ImportError):
            importlib.import_module("apprise.utils.pgp")
    return apprise


def check_apprise_url(value: str) -> str:
    """Apprise's own parser decides; the error names the URL only masked (it may embed a token)."""
    value = value.strip()
    if not value or len(value) > MAX_URL or not _no_control(value) or " " in value:
        raise ValueError("must be one apprise URL such as ntfys://ntfy.sh/topic, without spaces")
    if MASK in value:
        raise ValueError(
            f"{value!r} is masked and matches no stored URL; give the full URL, or leave it out to keep it"
        )
    if not _apprise().Apprise().add(value):
        raise ValueError(f"apprise does not recognise {mask_apprise_url(value)!r}")
    return value


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


def mask_http_url(url: str) -> str:
    """A webhook URL with any userinfo password, the query string and every path segment of 6 or more
    characters masked: many receivers (Slack, Discord, Home Assistant, n8n) carry their token in the
    path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        netloc = parts.username + (":" + MASK if parts.password else "") + "@" + netloc
    path = "/".join(MASK if len(segment) >= 6 else segment for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, MASK if parts.query else "", ""))


def is_real_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME_RE.match(host))
    return True


def mask_apprise_url(url: str) -> str:
    """`scheme://host[:port]/…` when the host part is a host name or an address (ntfy, json, mailto...);
    `scheme://…` when it is a token or an id (slack, discord, tgram, a bare ntfy topic)."""
    scheme, sep, _rest = url.partition("://")
    if not sep:
        return MASK
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{scheme}://{MASK}"
    if not is_real_host(host):
        return f"{scheme}://{MASK}"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}{f':{port}' if port else ''}/{MASK}"


# -- message text --------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g}"


def message_text(message: AlertMessage) -> str:
    """The plain-text body of an email or apprise notification."""
    labels = ", ".join(f"{key}={value}" for key, value in sorted(message.labels.items())) or "none"
    lines = [
        f"Rule:      {message.rule_name}",
        f"State:     {message.state}{' (reminder)' if message.repeat else ''}",
        f"Severity:  {message.severity}",
        f"Metric:    {message.metric}",
        f"Labels:    {labels}",
        f"Value:     {_number(message.value)}",
        f"Threshold: {_number(message.threshold)}",
        f"Started:   {message.started_at.isoformat()}",
        f"Ended:     {message.ended_at.isoformat() if message.ended_at else '-'}",
        f"Link:      {message.url}",
    ]
    if message.description:
        lines += ["", message.description]
    return "\n".join(lines) + "\n"


# -- sending -------------------------------------------------------------------------------------------


def signature(body: bytes, secret: str) -> str:
    """The `X-Nox-Signature` value: receivers recompute it over the raw body to trust a request."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(message: AlertMessage) -> bytes:
    return json.dumps(message.payload(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _quiet_apprise() -> None:
    """Keep apprise's logger out of the panel's logs (see the module docstring). Done before every use:
    a later `logging.config` call elsewhere may have reset it."""
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.propagate = False
    apprise_logger.setLevel(logging.WARNING)
    if not any(isinstance(h, logging.NullHandler) for h in apprise_logger.handlers):
        apprise_logger.addHandler(logging.NullHandler())


DELIVERY_THREAD_PREFIX = "nox-delivery"
# httpx logs every request line with its full URL at INFO, urllib3 (under apprise) at DEBUG; a webhook's
# query string or an apprise service's path carries its token.
_SECRETS_IN_FLIGHT: dict[str, tuple[str, ...]] = {}


class _NotFromDeliveryThreads(logging.Filter):
    """httpx: the webhooks' request lines (sent from the delivery thread) are dropped, others stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(DELIVERY_THREAD_PREFIX)


class _ScrubSecrets(logging.Filter):
    """urllib3: apprise sends from threads of its own, so its request lines are scrubbed instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [secret for group in list(_SECRETS_IN_FLIGHT.values()) for secret in group]
        if secrets:
            message = record.getMessage()
            cleaned = scrub(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def keep_delivery_requests_out_of_logs() -> None:
    """Install the two filters above (idempotent)."""
    for name, kind in (("httpx", _NotFromDeliveryThreads), ("urllib3.connectionpool", _ScrubSecrets)):
        transport_logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in transport_logger.filters):
            transport_logger.addFilter(kind())


def remember_secrets(key: str, secrets: Iterable[str]) -> None:
    """The secrets of a notifier (by `key`) that the log filters scrub; replaced at each send."""
    _SECRETS_IN_FLIGHT[key] = tuple(secret for secret in secrets if secret)
