"""`email` `{"to": [addresses]}`: a plain-text message sent through the SMTP runtime settings.

Port 465 means TLS from the start (SMTPS); otherwise STARTTLS when `smtp_starttls` is on (the default);
a login when `smtp_username` is set. The server's certificate is verified against the system's trusted
CAs (`SSL_CERT_FILE` / `SSL_CERT_DIR` in the environment name others, as for the webhooks' HTTPS); one
that is not trusted fails the delivery with the verifier's reason."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nox_ui.alerts import channels
from nox_ui.alerts.kinds.base import FormField, KindName, NotifierKind, SendContext, unique

if TYPE_CHECKING:
    from nox_ui.alerts.messages import AlertMessage
    from nox_ui.runtime_settings import RuntimeSettings


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: list[str] = Field(min_length=1, max_length=channels.MAX_RECIPIENTS)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return unique(channels.check_email(address) for address in value)


class Email(NotifierKind):
    name = KindName.EMAIL
    label = "Email"
    config_model = EmailConfig
    config_doc = '{"to": ["ops@example.org"]}'
    fields = (
        FormField(
            "to",
            "To (comma-separated addresses)",
            input="list",
            help="Sent through the SMTP server set in Settings.",
            placeholder="ops@example.org",
        ),
    )

    def public(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"to": list(config.get("to", []))}

    def send_secrets(self, settings: RuntimeSettings) -> list[str]:
        return [settings.smtp_password]

    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        await asyncio.to_thread(send_email, context.settings, config, message, timeout=context.timeout)


def send_email(
    smtp: RuntimeSettings, config: Mapping[str, Any], message: AlertMessage, *, timeout: float
) -> None:
    """Blocking: run it in a worker thread."""
    if not smtp.smtp_host:
        raise channels.DeliveryError("email is not configured: set smtp_host in Settings")
    if not smtp.smtp_from:
        raise channels.DeliveryError("email is not configured: set smtp_from in Settings")
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
    mail.set_content(channels.message_text(message))
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
        said = channels.certificate_refusal(exc) or f"{type(exc).__name__}: {exc}"
        raise channels.DeliveryError(said) from None
    if refused:
        raise channels.DeliveryError("recipients refused: " + ", ".join(sorted(refused)))
