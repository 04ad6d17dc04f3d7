"""What a notifier kind is: its config model, public view, secrets, merge, send and form fields.

A kind is a subclass of `NotifierKind` in its own module (`webhook.py`, `email.py`, `apprise.py`), listed
in the registry (`nox_ui/alerts/kinds/__init__.py`). Everything else (the service, the delivery queue,
the API and the notifier form) asks the registry and never names a kind.

Form fields (`FormField`) describe the inputs of the notifier form, the way `runtime_settings.py`
describes the settings page: `form_config` turns what was typed into a config, `form_values` fills the
form from a public config when a notifier is edited. A secret field shows empty when editing, and left
empty it keeps the stored value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from nox_ui.errors import Invalid
from nox_ui.outbound import OutboundGuard

if TYPE_CHECKING:
    import httpx

    from nox_ui.alerts.messages import AlertMessage
    from nox_ui.runtime_settings import RuntimeSettings


class KindName(StrEnum):
    """The built-in kinds (a plugin's kind is registered under a name of its own)."""

    WEBHOOK = "webhook"
    EMAIL = "email"
    APPRISE = "apprise"


InputKind = Literal["text", "password", "lines", "list", "number", "switch"]


@dataclass(frozen=True)
class FormField:
    """One input of the notifier form, for the config key `name`.

    `input`: `text` and `password` (one line), `lines` (a list, one item per line), `list` (a list,
    comma-separated on one line), `number`, `switch`. `secret`: never shown back (the public config
    masks it or leaves it out); left empty when editing, the stored value stays."""

    name: str
    label: str
    input: InputKind = "text"
    help: str = ""
    placeholder: str = ""
    secret: bool = False


@dataclass
class SendContext:
    """What a send may use: the queue's HTTP client (through the outbound guard, made on first use),
    the runtime settings of the moment, the outbound guard, the timeout, and the delivery's event and id."""

    http: Callable[[], httpx.AsyncClient]
    settings: RuntimeSettings
    outbound: OutboundGuard
    timeout: float
    event: str
    delivery_id: int


class NotifierKind(ABC):
    """One kind of notifier. Subclasses set the class attributes, implement `send`, and override what
    differs; a subclass without `send` cannot be instantiated, so it cannot be registered."""

    name: ClassVar[str]
    label: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    config_doc: ClassVar[str]  # the config's JSON shape, for the API documentation
    fields: ClassVar[tuple[FormField, ...]]
    sealed: ClassVar[tuple[str, ...]] = ()  # config keys encrypted at rest (str or list of str)

    # -- config --------------------------------------------------------------------------------------

    def field_names(self) -> str:
        return ", ".join(self.config_model.model_fields)

    def parse(self, config: Any) -> dict[str, Any]:
        """The validated config as stored (JSON-ready), or Invalid naming the offending field."""
        if not isinstance(config, Mapping):
            raise Invalid(
                f"config must be a JSON object; a {self.name} notifier takes {{{self.field_names()}}}"
            )
        try:
            model = self.config_model.model_validate(dict(config))
        except ValidationError as exc:
            raise Invalid(self._describe(exc)) from None
        return model.model_dump(exclude_none=True)

    def _describe(self, exc: ValidationError) -> str:
        messages = []
        for error in exc.errors(include_input=False):
            where = "config" + "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
            )
            if error["type"] == "extra_forbidden":
                message = f"unknown field (a {self.name} notifier takes {self.field_names()})"
            elif error["type"] == "missing":
                message = "required"
            else:
                message = str(error["msg"]).removeprefix("Value error, ")
            messages.append(f"{where}: {message}")
        return "; ".join(messages)

    def merge(self, stored: Mapping[str, Any], changes: Any) -> dict[str, Any]:
        """An update's config over the stored one: fields left out keep their value (so a secret is never
        needed again); a masked value as `public` shows it stands for the stored one."""
        if not isinstance(changes, Mapping):
            raise Invalid(
                f"config must be a JSON object; a {self.name} notifier takes {{{self.field_names()}}}"
            )
        return self.parse({**stored, **self.merged_changes(stored, changes)})

    def merged_changes(self, stored: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """The changes to lay over the stored config (a kind unmasks or drops what it shows masked)."""
        return dict(changes)

    def public(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config as the API, the UI and the audit log show it: no secret, no token."""
        return dict(config)

    def secrets(self, config: Mapping[str, Any]) -> list[str]:
        """Strings that must never reach a log line or the delivery log (scrubbed from error text)."""
        return []

    def send_secrets(self, settings: RuntimeSettings) -> list[str]:
        """Secrets from elsewhere a send uses (the SMTP password), scrubbed as well."""
        return []

    def check_targets(self, config: Mapping[str, Any], guard: OutboundGuard) -> None:  # noqa: B027
        """Refuse a config whose target is internal as written (an IP literal, `localhost`) unless the
        admin allowed it; names are checked when they are resolved, at send time. The default is for
        kinds without targets of their own (email goes to the SMTP server of the settings)."""

    def summary(self, public: Mapping[str, Any]) -> str:
        """One line naming where a notifier sends, from its public config (the notifiers table)."""
        return ", ".join(
            _text(public.get(f.name)) for f in self.fields if not f.secret and public.get(f.name)
        )

    # -- sending -------------------------------------------------------------------------------------

    @abstractmethod
    async def send(self, config: Mapping[str, Any], message: AlertMessage, context: SendContext) -> None:
        """Deliver `message`; raise `channels.DeliveryError` with what the delivery log should say."""

    # -- the form ------------------------------------------------------------------------------------

    def form_values(self, public: Mapping[str, Any] | None) -> dict[str, Any]:
        """The form's values for a notifier being edited (`public`: its public config) or a new one."""
        values: dict[str, Any] = {}
        for f in self.fields:
            value = None if public is None or f.secret else public.get(f.name)
            if f.input == "switch":
                values[f.name] = bool(value)
            elif f.input == "number":
                values[f.name] = value if isinstance(value, int | float) else None
            elif f.input == "lines":
                values[f.name] = "\n".join(str(v) for v in value) if isinstance(value, list) else ""
            elif f.input == "list":
                values[f.name] = ", ".join(str(v) for v in value) if isinstance(value, list) else ""
            else:
                values[f.name] = "" if value is None else str(value)
        return values

    def form_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The config of what was typed. An empty secret field is left out (a new notifier goes without
        it, an edited one keeps the stored value); other fields are always given, so that the check
        names an empty required one."""
        config: dict[str, Any] = {}
        for f in self.fields:
            raw = values.get(f.name)
            value: Any
            if f.input == "switch":
                value = bool(raw)
            elif f.input == "number":
                value = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
            elif f.input == "lines":
                value = [line.strip() for line in str(raw or "").splitlines() if line.strip()]
            elif f.input == "list":
                value = [item.strip() for item in str(raw or "").split(",") if item.strip()]
            else:
                value = str(raw or "") if f.input == "password" else str(raw or "").strip()
            if f.secret and value in ("", [], None):
                continue
            config[f.name] = value
        return config


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
