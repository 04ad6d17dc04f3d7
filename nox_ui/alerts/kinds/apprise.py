"""`apprise` `{"urls": [...]}`: any service apprise knows (ntfy, Slack, Discord, Telegram, ...).

Each URL embeds its service's tokens: it is shown as `scheme://host/…` when the host is a real host
name or address, otherwise as `scheme://…`; sent back unchanged, a masked URL stands for the stored one
it came from. Apprise is imported on first use (see `channels._apprise`)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nox_ui.alerts import channels
from nox_ui.alerts.kinds.base import FormField, KindName, NotifierKind, SendContext, unique
from nox_ui.errors import Invalid
from nox_ui.outbound import OutboundGuard, OutboundRefused

if TYPE_CHECKING:
    from nox_ui.alerts.messages import AlertMessage


class AppriseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    urls: list[str] = Field(min_length=1, max_length=channels.MAX_APPRISE_URLS)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return unique(channels.check_apprise_url(url) for url in value)


class Apprise(NotifierKind):
    name = KindName.APPRISE
    label = "Apprise (ntfy, Slack, ...)"
    config_model = AppriseConfig
    config_doc = '{"urls": ["ntfys://ntfy.sh/topic", ...]}'
    fields = (
        FormField(
            "urls",
            "Apprise URLs, one per line (write-only)",
            input="lines",
            help="Any service apprise knows; each URL carries its service's token.",
            placeholder="ntfys://ntfy.sh/topic",
            secret=True,
        ),
    )
    sealed = ("urls",)

    def merged_changes(self, stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        merged = dict(changes)
        if isinstance(changes.get("urls"), list):
            merged["urls"] = _unmask(changes["urls"], stored.get("urls") or [])
        return merged

    def public(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"urls": [channels.mask_apprise_url(str(url)) for url in config.get("urls", [])]}

    def summary(self, public: Mapping[str, Any]) -> str:
        return ", ".join(str(url) for url in public.get("urls", []))

    def secrets(self, config: Mapping[str, Any]) -> list[str]:
        found = []
        for url in config.get("urls", []):
            found.append(str(url))
            try:
                parts = urlsplit(str(url))
            except ValueError:
                continue
            token_host = "" if channels.is_real_host(parts.hostname or "") else parts.netloc
            pieces = [token_host, parts.password or "", parts.query, *parts.path.split("/")]
            found += [piece for piece in pieces if len(piece) >= 6]
        return found

    def check_targets(self, config: Mapping[str, Any], guard: OutboundGuard) -> None:
        apprise = channels._apprise()
        for index, url in enumerate(config.get("urls", [])):
            plugin = apprise.Apprise.instantiate(str(url))
            for host in apprise_hosts(plugin) if plugin else []:
                # token-only URLs have no host to check; digits there are ids, not legacy IPv4 forms
                refused = guard.literal_refusal(host, legacy_ipv4=False)
                if refused is not None:
                    raise Invalid(f"config.urls[{index}]: {refused.message}")

    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        await asyncio.to_thread(send_apprise, config, message, context.outbound)


def _unmask(urls: list[Any], stored: list[str]) -> list[Any]:
    by_mask: dict[str, list[str]] = {}
    for url in stored:
        by_mask.setdefault(channels.mask_apprise_url(url), []).append(url)
    result: list[Any] = []
    for url in urls:
        matches = by_mask.get(url, []) if isinstance(url, str) else []
        if len(matches) > 1:
            raise Invalid(f"config.urls: {url!r} matches several stored URLs; give the full URLs")
        result.append(matches[0] if matches else url)
    return result


def apprise_hosts(plugin: Any) -> list[str]:
    """The hosts an apprise plugin connects to when its URL names them (json://, ntfy://host, gotify,
    mailto with smtp=...); none for services whose URL holds only tokens (slack://, discord://)."""
    templates = getattr(plugin, "templates", ()) or ()
    if not any("{host}" in str(template) for template in templates):
        return []
    hosts = [getattr(plugin, name, None) for name in ("host", "smtp_host")]
    return [str(host) for host in hosts if isinstance(host, str) and host]


_APPRISE_LOCK = threading.Lock()
_NOTIFY_TYPE = {"critical": "failure", "warning": "warning", "info": "info"}


def send_apprise(config: Mapping[str, Any], message: AlertMessage, guard: OutboundGuard) -> None:
    """Blocking: run it in a worker thread. Sends are serialised so each one's log capture is its own.

    Apprise connects by itself: each target host its URL names is resolved and checked first, and its
    HTTP requests (urllib3) connect only to addresses the guard checked at that moment (see
    nox_ui/outbound.py for what this leaves to non-HTTP plugins)."""
    apprise = channels._apprise()
    # Sequential sends, in this (delivery) thread: their HTTP client logs are then filtered like the
    # webhooks' (see `channels.keep_delivery_requests_out_of_logs`).
    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    for url in config.get("urls", []):
        sender.add(str(url))
    try:
        for plugin in sender:
            for host in apprise_hosts(plugin):
                guard.check_host(host)
    except OutboundRefused as refused:
        raise channels.DeliveryError(channels.refusal_text(refused), permanent=True) from None
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
                    sender.notify(
                        body=channels.message_text(message), title=message.subject, notify_type=notify_type
                    )
                )
        finally:
            apprise_logger.removeHandler(handler)
    if scope.refusals:
        raise channels.DeliveryError(channels.refusal_text(scope.refusals[0]), permanent=True)
    if not ok:
        said = " ".join(line.strip() for line in buffer.getvalue().splitlines() if line.strip())
        raise channels.DeliveryError(said[:1000] or "apprise could not deliver to every URL")
