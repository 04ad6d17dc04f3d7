"""The notifier kinds registry: one module per kind, the form built from each kind's fields, and a kind
registered from outside (as a plugin will) working end to end through the service and the queue."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from nox_ui.alerts import kinds
from nox_ui.alerts.kinds import FormField, KindName, NotifierKind, SendContext
from nox_ui.alerts.messages import AlertMessage
from nox_ui.alerts.notify import DeliveryQueue
from nox_ui.app import Services
from nox_ui.errors import Invalid
from nox_ui.roles import PANEL
from tests.test_notify import SECRET, operator


def test_the_built_in_kinds_are_registered_in_order() -> None:
    assert kinds.names() == tuple(KindName) == ("webhook", "email", "apprise")
    assert [kind.label for kind in kinds.all_kinds()] == ["Webhook", "Email", "Apprise (ntfy, Slack, ...)"]


def test_an_unknown_kind_names_the_registered_ones() -> None:
    with pytest.raises(Invalid, match="unknown notifier kind 'pager': choose one of webhook, email, apprise"):
        kinds.get("pager")


CONFIGS = {
    "webhook": {"url": "https://hooks.example.org/in/abcdefgh?token=t0ken", "secret": SECRET},
    "email": {"to": ["ops@example.org", "oncall@example.org"]},
    "apprise": {"urls": ["ntfys://ntfy.sh/nox-topic-abc123", "json://hooks.example.org/path"]},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_an_edit_form_saved_untouched_keeps_the_config_and_its_secrets(name: str) -> None:
    kind = kinds.get(name)
    stored = kind.parse(CONFIGS[name])
    values = kind.form_values(kind.public(stored))
    for field in kind.fields:
        if field.secret:
            assert values[field.name] == ""  # a secret is never shown back
    assert kind.merge(stored, kind.form_config(values)) == stored


def test_a_new_form_gives_every_non_secret_field_so_an_empty_one_is_named() -> None:
    webhook = kinds.get("webhook")
    assert webhook.form_config(webhook.form_values(None)) == {"url": ""}
    with pytest.raises(Invalid, match=r"config\.url: must not be empty"):
        webhook.parse(webhook.form_config(webhook.form_values(None)))
    email = kinds.get("email")
    assert email.form_config({"to": " a@example.org, ,b@example.org "}) == {
        "to": ["a@example.org", "b@example.org"]
    }


# -- a kind from outside -------------------------------------------------------------------------------


class PingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    room: str = Field(min_length=1)
    token: str | None = None
    loud: bool = False


class Ping(NotifierKind):
    """A kind as a plugin would write it: it delivers into `inbox`."""

    name = "ping"
    label = "Ping"
    config_model = PingConfig
    config_doc = '{"room": "...", "token": "..."?, "loud": false?}'
    fields = (
        FormField("room", "Room"),
        FormField("token", "Token", input="password", secret=True),
        FormField("loud", "Loud", input="switch"),
    )
    sealed = ("token",)
    inbox: ClassVar[list[tuple[dict[str, Any], str, str]]] = []

    def public(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "room": config.get("room"),
            "loud": bool(config.get("loud")),
            "token_set": bool(config.get("token")),
        }

    def secrets(self, config: Mapping[str, Any]) -> list[str]:
        return [str(config["token"])] if config.get("token") else []

    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        self.inbox.append((dict(config), message.rule_name, context.event))


@pytest.fixture
def queue(services: Services) -> Iterator[DeliveryQueue]:
    """The services' own delivery queue, running."""
    services.notifiers.queue.start()
    yield services.notifiers.queue
    services.notifiers.queue.stop()


@pytest.fixture
def ping() -> Iterator[Ping]:
    kind = Ping()
    kinds.register(kind)
    Ping.inbox.clear()
    yield kind
    kinds.unregister(kind.name)


def test_a_registered_kind_is_created_shown_sealed_and_sent_through(
    services: Services, ping: Ping, queue: DeliveryQueue
) -> None:
    config = ping.form_config({"room": " ops ", "token": "pl4gin-T0KEN", "loud": True})
    view = services.notifiers.create(operator(services), "pinger", "ping", config)
    assert view.kind == "ping" and view.config == {"room": "ops", "loud": True, "token_set": True}
    assert kinds.summary("ping", view.config) == "ops, True"
    # an edit that leaves the token out keeps it
    services.notifiers.update(operator(services), view.id, config={"room": "ops2"})
    result = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, view.id).id, 30)
    assert result.status == "sent", result.error
    assert Ping.inbox == [
        ({"room": "ops2", "token": "pl4gin-T0KEN", "loud": True}, "Test notification", "test")
    ]


def test_a_notifier_whose_kind_is_gone_is_listed_and_fails_to_send(
    services: Services, ping: Ping, queue: DeliveryQueue
) -> None:
    view = services.notifiers.create(operator(services), "pinger", "ping", {"room": "ops"})
    kinds.unregister("ping")
    assert [n.kind for n in services.notifiers.list()] == ["ping"]
    result = services.notifiers.wait_for_delivery(services.notifiers.send_test(PANEL, view.id).id, 30)
    assert result.status == "failed" and result.last_error == "unknown notifier kind 'ping'"
