"""The registry of runtime settings: every setting an admin may change live, typed and validated.

One pydantic model is the single source of truth: the API's schema, the settings page's inputs and
groups, validation and defaults are all read from it. Adding a setting means adding one field here
(and a subscriber where it takes effect). Environment settings that need a restart (paths, ports,
the secret key) stay in `nox_ui/config.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nox_ui.errors import Invalid
from nox_ui.outbound import normalize_allowed_hosts
from nox_ui.parsing import check_email
from nox_ui.rates import parse_rates

GENERAL = "General"
SECURITY = "Security"
METRICS = "Metrics & retention"
ALERTS = "Alerts & email"
BACKUPS = "Backups"
RATE_LIMITS = "Rate limits"
GROUPS = (GENERAL, SECURITY, METRICS, ALERTS, BACKUPS, RATE_LIMITS)

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]]*$")


def setting(default: Any, description: str, group: str, *, secret: bool = False, **constraints: Any) -> Any:
    """A registry field: its group and whether it is write-only travel in the JSON schema."""
    return Field(
        default,
        description=description,
        json_schema_extra={"group": group, "secret": secret},
        **constraints,
    )


class RuntimeSettings(BaseModel):
    """Live settings. Strict types: `"25"` is not a port, `"yes"` is not a boolean."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # General
    site_name: str = setting(
        "Nox UI", "Name shown in the header and the browser tab.", GENERAL, min_length=1, max_length=64
    )

    # Security
    login_max_failures: int = setting(
        10,
        "Failed sign-ins allowed per account and address before sign-in is refused for a while.",
        SECURITY,
        ge=1,
        le=1000,
    )
    login_lockout_seconds: int = setting(
        900,
        "How long failed sign-ins are counted (and a locked sign-in stays locked).",
        SECURITY,
        ge=10,
        le=86400,
    )
    session_idle_minutes: int = setting(
        480, "A browser session ends after this long without a request.", SECURITY, ge=5, le=43200
    )
    session_max_hours: int = setting(
        168, "A browser session ends this long after sign-in, however active.", SECURITY, ge=1, le=8760
    )

    max_request_kib: int = setting(
        1024,
        "Largest request body accepted, in KiB; a larger one is refused with 413 before it is read "
        "(routes that need more, such as the settings import, allow more).",
        SECURITY,
        ge=16,
        le=65536,
    )
    process_cmdline_for_viewers: bool = setting(
        False,
        "Show viewers full process command lines (they often hold passwords); "
        "otherwise viewers see only the executable name.",
        SECURITY,
    )
    notify_allowed_hosts: str = setting(
        "",
        "Internal notification targets allowed despite the SSRF guard: host names or CIDRs separated "
        "by commas, e.g. 'hooks.lan, 10.0.0.0/24'. Loopback, link-local and private addresses are "
        "refused unless listed here.",
        SECURITY,
        max_length=2048,
    )

    audit_retention_days: int = setting(
        0,
        "Audit events older than this many days are archived to a file in DATA_DIR/backups "
        "(checked hourly; the chain stays verifiable). 0 keeps every event in the database.",
        SECURITY,
        ge=0,
        le=36500,
    )

    # Metrics & retention
    history_minute_days: int = setting(
        30, "Days of 1-minute history kept (used for ranges up to 7 days).", METRICS, ge=1, le=366
    )
    history_hour_days: int = setting(
        365, "Days of 1-hour history kept (used for longer ranges).", METRICS, ge=1, le=3660
    )

    # Alerts & email
    alert_history_days: int = setting(
        90,
        "Resolved alerts and their delivery logs are deleted after this many days (checked hourly). "
        "0 keeps them all.",
        ALERTS,
        ge=0,
        le=3650,
    )
    smtp_host: str = setting(
        "", "SMTP server for email notifications; empty: email is off.", ALERTS, max_length=255
    )
    smtp_port: int = setting(587, "SMTP port (587 submission, 465 TLS, 25 relay).", ALERTS, ge=1, le=65535)
    smtp_username: str = setting("", "SMTP user name; empty: no authentication.", ALERTS, max_length=255)
    smtp_password: str = setting("", "SMTP password (write-only).", ALERTS, secret=True, max_length=1024)
    smtp_from: str = setting("", "Sender address of notification emails.", ALERTS, max_length=254)
    smtp_starttls: bool = setting(True, "Upgrade the SMTP connection with STARTTLS.", ALERTS)

    # Backups
    backup_schedule: str = setting(
        "0 3 * * *", "When automatic backups run (cron: minute hour day month weekday; UTC).", BACKUPS
    )
    backup_keep: int = setting(7, "How many automatic backups are kept.", BACKUPS, ge=1, le=1000)

    # Rate limits
    api_rate_limit: str = setting(
        "600/minute",
        "Requests per client address to /api/v1, e.g. 600/minute, or 10/second;600/hour for two limits.",
        RATE_LIMITS,
        max_length=128,
    )

    @field_validator("site_name", "smtp_username", "smtp_from")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\t\x00"):
            raise ValueError("must be one line of text")
        return value.strip()

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not _HOST_RE.match(value):
            raise ValueError("must be a host name or an IP address, without a scheme or a port")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _email(cls, value: str) -> str:
        try:
            return check_email(value, "smtp_from") if value.strip() else ""
        except Invalid as exc:
            raise ValueError(str(exc)) from None

    @field_validator("notify_allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: str) -> str:
        return normalize_allowed_hosts(value)  # its ValueError names the malformed entry

    @field_validator("backup_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter  # only when a schedule is checked (~0.5 MiB)

        value = " ".join(value.split())
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("must be a cron expression with 5 fields, e.g. '0 3 * * *' (daily at 03:00)")
        return value

    @field_validator("api_rate_limit")
    @classmethod
    def _limit(cls, value: str) -> str:
        value = value.strip()
        try:
            parse_rates(value)
        except ValueError:
            raise ValueError(
                "must be a rate such as '600/minute', or several joined by ';' such as '10/second;600/hour'"
            ) from None
        return value

    @model_validator(mode="after")
    def _tiers_nest(self) -> RuntimeSettings:
        if self.history_hour_days < self.history_minute_days:
            raise ValueError("history_hour_days must be at least history_minute_days")
        return self


@dataclass(frozen=True)
class SettingInfo:
    key: str
    type: str
    default: Any
    group: str
    description: str
    secret: bool
    constraints: dict[str, Any]


_JSON_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "number": "number"}
_CONSTRAINT_KEYS = ("minimum", "maximum", "minLength", "maxLength")


def registry(model: type[BaseModel] = RuntimeSettings, *, group: str = "") -> dict[str, SettingInfo]:
    """Every setting of `model` (the panel's, or a plugin's `settings_schema`) in declaration order,
    described from its JSON schema; `group` puts all of them in one group (a plugin's name). Raises
    ValueError naming a field whose type the settings page and API cannot offer."""
    properties = model.model_json_schema()["properties"]
    infos = {}
    for key, field in model.model_fields.items():
        prop = properties[key]
        if prop.get("type") not in _JSON_TYPES:
            raise ValueError(f"setting {key!r}: only str, int, float and bool settings are supported")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        infos[key] = SettingInfo(
            key=key,
            type=_JSON_TYPES[prop["type"]],
            default=field.default,
            group=group or str(extra.get("group", GENERAL)),
            description=field.description or "",
            secret=bool(extra.get("secret", False)),
            constraints={name: prop[name] for name in _CONSTRAINT_KEYS if name in prop},
        )
    return infos


SECRET_KEYS = frozenset(key for key, info in registry().items() if info.secret)


def field_errors(exc: ValidationError, model: type[BaseModel] = RuntimeSettings) -> dict[str, str]:
    """pydantic's errors as {setting key: readable message}; cross-field errors under the first key named."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc", ())
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if loc:
            key = str(loc[0])
        else:
            named = [k for k in model.model_fields if k in message]
            key = min(named, key=message.index) if named else "__all__"
        if error.get("type") == "extra_forbidden":
            message = "unknown setting"
        errors.setdefault(key, message)
    return errors
