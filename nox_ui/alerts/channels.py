"""Notifier kinds: how each one's config is validated and shown, and how a message is sent through it.

Three kinds, each with a pydantic model for its `config`:

- `webhook` `{"url", "secret"?}`: a JSON POST of `AlertMessage.payload()`; with a secret, the header
  `X-Nox-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
- `email` `{"to": [addresses]}`: sent through the SMTP runtime settings.
- `apprise` `{"urls": [...]}`: any service apprise knows (ntfy, Slack, Discord, Telegram, ...).

What the outside sees of a config (`public_config`): the webhook `secret` only as `secret_set`, the
webhook URL with a userinfo password and the query string masked, and each apprise URL (which embeds
its service's tokens) as `scheme://host…` when the host is a real host name or address, otherwise as
`scheme://…`. A masked value sent back unchanged in an update means "keep the stored one".

At rest (`seal`), the webhook URL and secret and every apprise URL are encrypted with the panel's
`SecretBox`, and the public form is stored beside them, so listing notifiers needs no key; `unseal`
gives the plain config back where a message is sent or an update is merged. Values stored before
encryption existed are plain text: they are read as they are and encrypted at their next write.

Every connection goes through the `OutboundGuard` (nox_ui/outbound.py): a saved target that is
internal as written (an IP literal, `localhost`) is refused at once (`check_targets`), names are
checked when resolved at send time. The delivery log keeps what went wrong as a status code or an
error class, never the text a target answered.

Apprise is imported on first use (it loads ~190 plugins) and its own logger is kept out of the panel's
logs: at DEBUG it prints full service URLs, and its error for an unparseable URL echoes the URL.
What it says about a failed send is captured into the delivery log instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import io
import ipaddress
import json
import logging
import re
import ssl
import threading
import warnings
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    import httpx

from nox_ui import __version__, parsing
from nox_ui.alerts.messages import AlertMessage
from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.errors import Invalid
from nox_ui.outbound import ALLOW_HINT, OutboundGuard, OutboundRefused
from nox_ui.runtime_settings import RuntimeSettings

Kind = Literal["webhook", "email", "apprise"]
KINDS: tuple[str, ...] = ("webhook", "email", "apprise")
MASK = "…"
MAX_URL = 2048
MAX_SECRET = 512
MAX_RECIPIENTS = 20
MAX_APPRISE_URLS = 20
USER_AGENT = f"nox-ui/{__version__}"
SIGNATURE_HEADER = "X-Nox-Signature"
EVENT_HEADER = "X-Nox-Event"
DELIVERY_HEADER = "X-Nox-Delivery"

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


# -- configs -----------------------------------------------------------------------------------------


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


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    secret: str | None = Field(default=None, max_length=MAX_SECRET)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return value or None


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return _unique(check_email(address) for address in value)


class AppriseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    urls: list[str] = Field(min_length=1, max_length=MAX_APPRISE_URLS)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return _unique(check_apprise_url(url) for url in value)


NotifierConfig = WebhookConfig | EmailConfig | AppriseConfig
_MODELS: dict[str, type[BaseModel]] = {
    "webhook": WebhookConfig,
    "email": EmailConfig,
    "apprise": AppriseConfig,
}
_FIELDS = {"webhook": "url, secret", "email": "to", "apprise": "urls"}


def check_kind(kind: str) -> str:
    kind = kind.strip().lower() if isinstance(kind, str) else ""
    if kind not in KINDS:
        raise Invalid(f"unknown notifier kind {kind!r}: choose one of {', '.join(KINDS)}")
    return kind


def parse_config(kind: str, config: Any) -> dict[str, Any]:
    """The validated config as stored (JSON-ready), or Invalid naming the offending field."""
    kind = check_kind(kind)
    if not isinstance(config, Mapping):
        raise Invalid(f"config must be a JSON object; a {kind} notifier takes {{{_FIELDS[kind]}}}")
    try:
        model = _MODELS[kind].model_validate(dict(config))
    except ValidationError as exc:
        raise Invalid(_describe(kind, exc)) from None
    return model.model_dump(exclude_none=True)


def _describe(kind: str, exc: ValidationError) -> str:
    messages = []
    for error in exc.errors(include_input=False):
        where = "config" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        )
        if error["type"] == "extra_forbidden":
            message = f"unknown field (a {kind} notifier takes {_FIELDS[kind]})"
        elif error["type"] == "missing":
            message = "required"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        messages.append(f"{where}: {message}")
    return "; ".join(messages)


def merge_config(kind: str, stored: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """An update's config over the stored one of the same kind: fields left out keep their value (so a
    secret is never needed again), `"secret": null` or `""` removes the secret, and a masked URL as
    `public_config` shows it stands for the stored URL it came from (so the shown config can be sent
    back with only the intended change)."""
    if not isinstance(changes, Mapping):
        raise Invalid(f"config must be a JSON object; a {kind} notifier takes {{{_FIELDS[kind]}}}")
    if kind == "webhook":  # `secret_set` is what `public_config` shows; sent back, it changes nothing
        changes = {key: value for key, value in changes.items() if key != "secret_set"}
    merged = {**stored, **changes}
    if kind == "webhook":
        if "secret" in changes and not changes["secret"]:
            merged.pop("secret", None)
        url, stored_url = changes.get("url"), stored.get("url")
        if isinstance(url, str) and isinstance(stored_url, str) and url == mask_http_url(stored_url):
            merged["url"] = stored_url
    elif kind == "apprise" and isinstance(changes.get("urls"), list):
        merged["urls"] = _unmask_apprise(changes["urls"], stored.get("urls") or [])
    return parse_config(kind, merged)


def _unmask_apprise(urls: list[Any], stored: list[str]) -> list[Any]:
    by_mask: dict[str, list[str]] = {}
    for url in stored:
        by_mask.setdefault(mask_apprise_url(url), []).append(url)
    result: list[Any] = []
    for url in urls:
        matches = by_mask.get(url, []) if isinstance(url, str) else []
        if len(matches) > 1:
            raise Invalid(f"config.urls: {url!r} matches several stored URLs; give the full URLs")
        result.append(matches[0] if matches else url)
    return result


def public_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as the API, the UI and the audit log show it: no secret, no token."""
    if kind == "webhook":
        return {"url": mask_http_url(str(config.get("url", ""))), "secret_set": bool(config.get("secret"))}
    if kind == "email":
        return {"to": list(config.get("to", []))}
    if kind == "apprise":
        return {"urls": [mask_apprise_url(str(url)) for url in config.get("urls", [])]}
    return {}


def secrets_of(kind: str, config: Mapping[str, Any]) -> list[str]:
    """Strings that must never reach a log line or the delivery log (scrubbed from error text)."""
    if kind == "webhook":
        found = [str(config["secret"])] if config.get("secret") else []
        try:
            parts = urlsplit(str(config.get("url", "")))
        except ValueError:
            return found
        # receivers such as Slack, Discord or Home Assistant carry their token in the path
        path_tokens = [segment for segment in parts.path.split("/") if len(segment) >= 6]
        return found + [part for part in (parts.password, parts.query) if part] + path_tokens
    if kind == "apprise":
        found = []
        for url in config.get("urls", []):
            found.append(str(url))
            try:
                parts = urlsplit(str(url))
            except ValueError:
                continue
            token_host = "" if _is_real_host(parts.hostname or "") else parts.netloc
            pieces = [token_host, parts.password or "", parts.query, *parts.path.split("/")]
            found += [piece for piece in pieces if len(piece) >= 6]
        return found
    return []


_SEALED = {"webhook": ("url", "secret"), "apprise": ("urls",)}
SEALED_KINDS = tuple(_SEALED)
PUBLIC_KEY = "public"


def seal(kind: str, config: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """A validated config as stored: its secret fields encrypted, its public form beside them."""
    stored: dict[str, Any] = dict(config)
    for key in _SEALED.get(kind, ()):
        value = stored.get(key)
        if isinstance(value, str):
            stored[key] = box.encrypt(value)
        elif isinstance(value, list):
            stored[key] = [box.encrypt(str(item)) for item in value]
    stored[PUBLIC_KEY] = public_config(kind, config)
    return stored


def unseal(kind: str, stored: Mapping[str, Any], box: SecretBox | None) -> dict[str, Any]:
    """The plain config of a stored one (plain-text values from before encryption pass as they are).
    Raises `SecretUnreadable` when a value cannot be decrypted (another key, or no key given)."""

    def plain(value: Any) -> Any:
        if not isinstance(value, str) or not SecretBox.is_encrypted(value):
            return value
        if box is None:
            raise SecretUnreadable("a stored secret cannot be decrypted: no key was given")
        return box.decrypt(value)

    config = {key: value for key, value in stored.items() if key != PUBLIC_KEY}
    for key in _SEALED.get(kind, ()):
        value = config.get(key)
        config[key] = [plain(item) for item in value] if isinstance(value, list) else plain(value)
        if config[key] is None:
            del config[key]
    return config


def shown_config(kind: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """What the outside sees of a stored config, without decrypting anything."""
    public = stored.get(PUBLIC_KEY)
    if isinstance(public, dict):
        return dict(public)
    return public_config(kind, stored)  # stored before encryption: plain, masked as it is


def apprise_hosts(plugin: Any) -> list[str]:
    """The hosts an apprise plugin connects to when its URL names them (json://, ntfy://host, gotify,
    mailto with smtp=...); none for services whose URL holds only tokens (slack://, discord://)."""
    templates = getattr(plugin, "templates", ()) or ()
    if not any("{host}" in str(template) for template in templates):
        return []
    hosts = [getattr(plugin, name, None) for name in ("host", "smtp_host")]
    return [str(host) for host in hosts if isinstance(host, str) and host]


def check_targets(kind: str, config: Mapping[str, Any], guard: OutboundGuard) -> None:
    """Refuse a config whose target is internal as written (an IP literal, `localhost`) unless the
    admin allowed it; names are checked when they are resolved, at send time."""
    if kind == "webhook":
        refused = guard.literal_refusal(urlsplit(str(config.get("url", ""))).hostname or "")
        if refused is not None:
            raise Invalid(f"config.url: {refused.message}")
    elif kind == "apprise":
        apprise = _apprise()
        for index, url in enumerate(config.get("urls", [])):
            plugin = apprise.Apprise.instantiate(str(url))
            for host in apprise_hosts(plugin) if plugin else []:
                # token-only URLs have no host to check; digits there are ids, not legacy IPv4 forms
                refused = guard.literal_refusal(host, legacy_ipv4=False)
                if refused is not None:
                    raise Invalid(f"config.urls[{index}]: {refused.message}")


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


def _is_real_host(host: str) -> bool:
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
    if not _is_real_host(host):
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


async def send_webhook(
    client: httpx.AsyncClient,
    config: Mapping[str, Any],
    message: AlertMessage,
    *,
    event: str,
    delivery_id: int,
) -> None:
    """POST through `client` (the outbound guard's, not following redirects). The answer's body is never
    read: a receiver's status is all the delivery log keeps."""
    import httpx  # imported on first use: most panels never send a webhook (and httpx costs ~1 MiB)

    body = webhook_body(message)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
    }
    if config.get("secret"):
        headers[SIGNATURE_HEADER] = signature(body, str(config["secret"]))
    try:
        async with client.stream("POST", str(config["url"]), content=body, headers=headers) as response:
            status = response.status_code
    except OutboundRefused as refused:
        raise DeliveryError(refusal_text(refused), permanent=True) from None
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"timed out ({error_class(exc)})") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(error_class(exc)) from None
    if not 200 <= status < 300:
        # the standard phrase: the one on the receiver's status line is its own text
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise DeliveryError(f"HTTP {status} {httpx.codes.get_reason_phrase(status)}{note}".rstrip())


def send_email(
    smtp: RuntimeSettings, config: Mapping[str, Any], message: AlertMessage, *, timeout: float
) -> None:
    """Blocking: run it in a worker thread. Port 465 means TLS from the start; otherwise STARTTLS when
    `smtp_starttls` is on; a login when `smtp_username` is set."""
    if not smtp.smtp_host:
        raise DeliveryError("email is not configured: set smtp_host in Settings")
    if not smtp.smtp_from:
        raise DeliveryError("email is not configured: set smtp_from in Settings")
    recipients = list(config.get("to", []))
    import smtplib  # loaded when the first email goes out
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = smtp.smtp_from
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=smtp.smtp_from.rpartition("@")[2] or None)
    mail["X-Nox-State"] = message.state
    mail.set_content(message_text(message))
    context = ssl.create_default_context()
    client: smtplib.SMTP
    try:
        if smtp.smtp_port == 465:
            client = smtplib.SMTP_SSL(smtp.smtp_host, smtp.smtp_port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.smtp_host, smtp.smtp_port, timeout=timeout)
        with client:
            client.ehlo()
            if smtp.smtp_starttls and smtp.smtp_port != 465:
                client.starttls(context=context)
                client.ehlo()
            if smtp.smtp_username:
                client.login(smtp.smtp_username, smtp.smtp_password)
            refused = client.send_message(mail, from_addr=smtp.smtp_from, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if refused:
        raise DeliveryError("recipients refused: " + ", ".join(sorted(refused)))


_APPRISE_LOCK = threading.Lock()


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


_NOTIFY_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}


def send_apprise(config: Mapping[str, Any], message: AlertMessage, guard: OutboundGuard) -> None:
    """Blocking: run it in a worker thread. Sends are serialised so each one's log capture is its own.

    Apprise connects by itself: each target host its URL names is resolved and checked first, and its
    HTTP requests (urllib3) connect only to addresses the guard checked at that moment (see
    nox_ui/outbound.py for what this leaves to non-HTTP plugins)."""
    apprise = _apprise()
    # Sequential sends, in this (delivery) thread: their HTTP client logs are then filtered like the
    # webhooks' (see `keep_delivery_requests_out_of_logs`).
    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    for url in config.get("urls", []):
        sender.add(str(url))
    try:
        for plugin in sender:
            for host in apprise_hosts(plugin):
                guard.check_host(host)
    except OutboundRefused as refused:
        raise DeliveryError(refusal_text(refused), permanent=True) from None
    notify_type = "success" if message.state == "resolved" else _NOTIFY_TYPE.get(message.severity, "info")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    apprise_logger = logging.getLogger("apprise")
    with _APPRISE_LOCK:
        apprise_logger.addHandler(handler)
        try:
            with guard.guard_urllib3() as scope:
                ok = bool(
                    sender.notify(body=message_text(message), title=message.subject, notify_type=notify_type)
                )
        finally:
            apprise_logger.removeHandler(handler)
    if scope.refusals:
        raise DeliveryError(refusal_text(scope.refusals[0]), permanent=True)
    if not ok:
        said = " ".join(line.strip() for line in buffer.getvalue().splitlines() if line.strip())
        raise DeliveryError(said[:1000] or "apprise could not deliver to every URL")
