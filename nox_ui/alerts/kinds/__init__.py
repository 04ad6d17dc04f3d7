"""The registry of notifier kinds: one module per kind (`webhook`, `email`, `apprise`), listed here.

Adding a kind touches one file: a `NotifierKind` subclass in its own module, then `register(Kind())`
(the built-in ones below; a plugin calls `register` with its own). Everything that depends on the kind
goes through the functions here: checking a kind name, parsing, merging, showing, sealing and
unsealing a config, its secrets, its targets, and the form (`all_kinds()` in registration order).

At rest (`seal`), each kind's `sealed` config keys are encrypted with the panel's `SecretBox`, and the
public form is stored beside them, so listing notifiers needs no key; `unseal` gives the plain config
back where a message is sent or an update is merged. Values stored before encryption existed are plain
text: they are read as they are and encrypted at their next write. A stored notifier whose kind is no
longer registered (a plugin removed) is still listed, shown as stored, and fails to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nox_ui.alerts.kinds.apprise import Apprise
from nox_ui.alerts.kinds.base import FormField, KindName, NotifierKind, SendContext
from nox_ui.alerts.kinds.email import Email
from nox_ui.alerts.kinds.webhook import Webhook
from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.errors import Invalid
from nox_ui.outbound import OutboundGuard

__all__ = [
    "PUBLIC_KEY",
    "FormField",
    "KindName",
    "NotifierKind",
    "SendContext",
    "all_kinds",
    "check_kind",
    "check_kind_name",
    "check_targets",
    "find",
    "get",
    "merge_config",
    "names",
    "parse_config",
    "public_config",
    "register",
    "seal",
    "sealed_kinds",
    "secrets_of",
    "shown_config",
    "summary",
    "unregister",
    "unseal",
]


PUBLIC_KEY = "public"
_REGISTRY: dict[str, NotifierKind] = {}


def register(kind: NotifierKind) -> NotifierKind:
    """Add a kind (its `name`: lower case letters, digits, `-` and `_`; at most 16 characters, the API's
    limit). Registering a name twice replaces the earlier kind."""
    name = check_kind_name(kind.name)
    _REGISTRY[name] = kind
    return kind


def check_kind_name(name: object) -> str:
    """A kind's name as `register` takes it, or ValueError saying what is wrong."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 16
        or name != name.strip().lower()
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise ValueError(
            f"invalid notifier kind name {name!r}: 1 to 16 lower-case letters, digits, '-' and '_'"
        )
    return name


def unregister(name: str) -> None:
    """Remove a kind (a plugin unloaded); its stored notifiers stay, listed, and fail to send."""
    _REGISTRY.pop(name, None)


def all_kinds() -> tuple[NotifierKind, ...]:
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def find(kind: str) -> NotifierKind | None:
    return _REGISTRY.get(kind)


def check_kind(kind: Any) -> str:
    name = kind.strip().lower() if isinstance(kind, str) else ""
    if name not in _REGISTRY:
        raise Invalid(f"unknown notifier kind {name!r}: choose one of {', '.join(_REGISTRY)}")
    return name


def get(kind: Any) -> NotifierKind:
    """The registered kind, or Invalid naming the known ones."""
    return _REGISTRY[check_kind(kind)]


# -- configs, by kind name -----------------------------------------------------------------------------


def parse_config(kind: str, config: Any) -> dict[str, Any]:
    """The validated config as stored (JSON-ready), or Invalid naming the offending field."""
    return get(kind).parse(config)


def merge_config(kind: str, stored: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """An update's config over the stored one of the same kind (see `NotifierKind.merge`)."""
    return get(kind).merge(stored, changes)


def public_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as the API, the UI and the audit log show it: no secret, no token."""
    found = find(kind)
    return found.public(config) if found else {}


def secrets_of(kind: str, config: Mapping[str, Any]) -> list[str]:
    found = find(kind)
    return found.secrets(config) if found else []


def check_targets(kind: str, config: Mapping[str, Any], guard: OutboundGuard) -> None:
    get(kind).check_targets(config, guard)


def summary(kind: str, public: Mapping[str, Any]) -> str:
    """Where a notifier sends, in one line, from its public config."""
    found = find(kind)
    return found.summary(public) if found else ""


# -- at rest -------------------------------------------------------------------------------------------


def sealed_kinds() -> tuple[str, ...]:
    """The kinds that have secrets at rest (for re-encrypting them under a new key)."""
    return tuple(name for name, kind in _REGISTRY.items() if kind.sealed)


def _sealed(kind: str) -> tuple[str, ...]:
    found = find(kind)
    return found.sealed if found else ()


def seal(kind: str, config: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """A validated config as stored: its secret fields encrypted, its public form beside them."""
    stored: dict[str, Any] = dict(config)
    for key in _sealed(kind):
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
    for key in _sealed(kind):
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


for _kind in (Webhook(), Email(), Apprise()):
    register(_kind)
