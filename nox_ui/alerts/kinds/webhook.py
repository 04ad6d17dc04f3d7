"""`webhook` `{"url", "secret"?}`: a JSON POST of `AlertMessage.payload()`; with a secret, the header
`X-Nox-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

Shown: the secret only as `secret_set`, the URL with a userinfo password, the query string and long
path segments (tokens) masked. Sent back unchanged, the masked URL stands for the stored one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nox_ui.alerts import channels
from nox_ui.alerts.kinds.base import FormField, KindName, NotifierKind, SendContext
from nox_ui.errors import Invalid
from nox_ui.outbound import OutboundGuard, OutboundRefused

if TYPE_CHECKING:
    from nox_ui.alerts.messages import AlertMessage


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    secret: str | None = Field(default=None, max_length=channels.MAX_SECRET)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return channels.check_http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return value or None


class Webhook(NotifierKind):
    name = KindName.WEBHOOK
    label = "Webhook"
    config_model = WebhookConfig
    config_doc = '{"url": "https://...", "secret": "..."?}'
    fields = (
        FormField("url", "URL", placeholder="https://example.org/hook"),
        FormField(
            "secret",
            "Signing secret (optional, write-only)",
            input="password",
            help="Receivers check the X-Nox-Signature header (HMAC-SHA256 of the body) with it.",
            secret=True,
        ),
    )
    sealed = ("url", "secret")

    def merged_changes(self, stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        # `secret_set` is what `public` shows; sent back, it changes nothing
        merged = {key: value for key, value in changes.items() if key != "secret_set"}
        if "secret" in merged and not merged["secret"]:
            merged["secret"] = None  # `"secret": null` or `""` removes the secret
        url, stored_url = merged.get("url"), stored.get("url")
        if isinstance(url, str) and isinstance(stored_url, str) and url == channels.mask_http_url(stored_url):
            merged["url"] = stored_url
        return merged

    def public(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": channels.mask_http_url(str(config.get("url", ""))),
            "secret_set": bool(config.get("secret")),
        }

    def secrets(self, config: Mapping[str, Any]) -> list[str]:
        found = [str(config["secret"])] if config.get("secret") else []
        try:
            parts = urlsplit(str(config.get("url", "")))
        except ValueError:
            return found
        # receivers such as Slack, Discord or Home Assistant carry their token in the path
        path_tokens = [segment for segment in parts.path.split("/") if len(segment) >= 6]
        return found + [part for part in (parts.password, parts.query) if part] + path_tokens

    def check_targets(self, config: Mapping[str, Any], guard: OutboundGuard) -> None:
        refused = guard.literal_refusal(urlsplit(str(config.get("url", ""))).hostname or "")
        if refused is not None:
            raise Invalid(f"config.url: {refused.message}")

    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        """POST through the queue's client (the outbound guard's, not following redirects). The answer's
        body is never read: a receiver's status is all the delivery log keeps."""
        import httpx  # imported on first use: most panels never send a webhook (and httpx costs ~1 MiB)

        body = channels.webhook_body(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": channels.USER_AGENT,
            channels.EVENT_HEADER: context.event,
            channels.DELIVERY_HEADER: str(context.delivery_id),
        }
        if config.get("secret"):
            headers[channels.SIGNATURE_HEADER] = channels.signature(body, str(config["secret"]))
        client = context.http()
        try:
            async with client.stream("POST", str(config["url"]), content=body, headers=headers) as response:
                status = response.status_code
        except OutboundRefused as refused:
            raise channels.DeliveryError(channels.refusal_text(refused), permanent=True) from None
        except httpx.TimeoutException as exc:
            raise channels.DeliveryError(f"timed out ({channels.error_class(exc)})") from None
        except httpx.HTTPError as exc:
            raise channels.DeliveryError(
                channels.certificate_refusal(exc) or channels.error_class(exc)
            ) from None
        if not 200 <= status < 300:
            # the standard phrase: the one on the receiver's status line is its own text
            note = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise channels.DeliveryError(
                f"HTTP {status} {httpx.codes.get_reason_phrase(status)}{note}".rstrip()
            )
