"""The notifier dialog, built from the kinds registry, through NiceGUI's simulated user: each kind's
inputs show while it is chosen, an email notifier is made from its one-line list of addresses, and an
edited webhook shows its masked URL, never its secret, and keeps the secret when saved."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.roles import PANEL
from tests.conftest import OPERATOR_PASSWORD, sign_in
from tests.test_ui_alerts import settle, table


def element(user: User, marker: str) -> ui.element:
    """The element with `marker`, shown or hidden (`user.find` sees only what is shown)."""
    assert user.client is not None
    return next(e for e in user.client.layout.descendants() if marker in e._markers)


async def test_an_email_notifier_is_made_from_the_form_of_its_kind(
    app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    app_user.find(marker="new-notifier").click()
    await app_user.should_see(marker="notifier-url")
    await app_user.should_not_see(marker="notifier-to")
    kind = element(app_user, "notifier-kind")
    assert isinstance(kind, ui.select)
    assert kind.options == {"webhook": "Webhook", "email": "Email", "apprise": "Apprise (ntfy, Slack, ...)"}
    kind.set_value("email")
    await app_user.should_see(marker="notifier-to")
    await app_user.should_not_see(marker="notifier-url")
    app_user.find(marker="notifier-name").type("mail")
    app_user.find(marker="notifier-to").type("ops@example.org, oncall@example.org")
    app_user.find(marker="notifier-save").click()
    await settle(lambda: [n.name for n in accounts.notifiers.list()] == ["mail"])
    [view] = accounts.notifiers.list()
    assert view.kind == "email" and view.config == {"to": ["ops@example.org", "oncall@example.org"]}


async def test_editing_a_webhook_shows_no_secret_and_keeps_it(app_user: User, accounts: Services) -> None:
    hook = accounts.notifiers.create(
        PANEL, "hook", "webhook", {"url": "https://hooks.example.org/in?token=abc", "secret": "s3cret-value"}
    )
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/alerts")
    await settle(lambda: len(table(app_user, "notifiers").rows) == 1)
    app_user.find(marker="notifiers").trigger("rowAction", {"action": "edit", "key": hook.id})
    url, secret = element(app_user, "notifier-url"), element(app_user, "notifier-secret")
    assert isinstance(url, ui.input) and isinstance(secret, ui.input)
    await settle(lambda: url.value == "https://hooks.example.org/in?…")
    assert secret.value == "" and secret.visible
    app_user.find(marker="notifier-name").clear().type("hook 2")
    app_user.find(marker="notifier-save").click()
    await settle(lambda: accounts.notifiers.get(hook.id).name == "hook 2")
    assert accounts.notifiers.get(hook.id).config == {
        "url": "https://hooks.example.org/in?…",
        "secret_set": True,
    }
