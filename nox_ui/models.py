"""Database tables. Alembic migrations in nox_ui/migrations must match these (checked by pytest-alembic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    # casefolded username: the case-insensitive unique key, portable to every database
    username_key: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=128)
    email: str = Field(default="", max_length=254)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    disabled: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_login_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class LoginSession(SQLModel, table=True):
    """A browser sign-in. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "login_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=256)


class ApiToken(SQLModel, table=True):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    name: str = Field(default="", max_length=128)
    scopes: str = Field(default="", max_length=256)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class MetricSeries(SQLModel, table=True):
    """One series id (`name{labels}`); the rollup tables refer to it by number to stay small."""

    __tablename__ = "metric_series"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)


class MetricMinute(SQLModel, table=True):
    """1-minute rollup: kept `history_minute_days` (30 by default)."""

    __tablename__ = "metric_minute"

    series_id: int = Field(foreign_key="metric_series.id", ondelete="CASCADE", primary_key=True)
    ts: int = Field(primary_key=True, index=True)  # start of the minute, Unix seconds; index for pruning
    avg: float
    min: float
    max: float


class MetricHour(SQLModel, table=True):
    """1-hour rollup: kept `history_hour_days` (365 by default)."""

    __tablename__ = "metric_hour"

    series_id: int = Field(foreign_key="metric_series.id", ondelete="CASCADE", primary_key=True)
    ts: int = Field(primary_key=True, index=True)  # start of the hour, Unix seconds; index for pruning
    avg: float
    min: float
    max: float


class AuditEvent(SQLModel, table=True):
    """One entry of the append-only audit log; `hash` chains it to the entry before (see services/audit.py)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor_id: int | None = Field(default=None)
    actor_name: str = Field(default="system", max_length=64, index=True)
    actor_role: str = Field(default="system", max_length=16)
    source_ip: str = Field(default="", max_length=64)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=128)
    target_label: str = Field(default="", max_length=256)
    outcome: str = Field(max_length=16)
    details: str = Field(default="{}", sa_column=Column(Text(), nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class RuntimeSetting(SQLModel, table=True):
    """One runtime setting changed from its default (nox_ui/runtime_settings.py); the value is JSON."""

    __tablename__ = "runtime_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_by: str = Field(default="system", max_length=64)


# -- plugins (nox_ui/plugins) ------------------------------------------------------------------------


class PluginRecord(SQLModel, table=True):
    """An admin's decision about a discovered plugin: enabled or not. A plugin with no row is new, and
    new plugins stay disabled until an admin enables them."""

    __tablename__ = "plugins"

    name: str = Field(primary_key=True, max_length=40)
    enabled: bool = Field(default=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_by: str = Field(default="system", max_length=64)


class PluginSetting(SQLModel, table=True):
    """One setting of a plugin changed from its default (its `settings_schema` model); the value is JSON."""

    __tablename__ = "plugin_settings"

    plugin: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_by: str = Field(default="system", max_length=64)


# -- alerting (nox_ui/alerts) ------------------------------------------------------------------------


class AlertRule(SQLModel, table=True):
    """A threshold or no-data rule over one metric selector; its notifiers are in `alert_rule_notifiers`."""

    __tablename__ = "alert_rules"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    kind: str = Field(default="threshold", max_length=16)  # threshold | nodata
    metric: str = Field(max_length=255)  # selector: name, optionally {label="value",...}
    op: str = Field(default=">", max_length=2)
    threshold: float = Field(default=0.0)
    for_seconds: int = Field(default=0)
    clear_threshold: float | None = Field(default=None)
    severity: str = Field(default="warning", max_length=16)  # info | warning | critical
    repeat_seconds: int | None = Field(default=None)
    enabled: bool = Field(default=True)
    description: str = Field(default="", sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class AlertRuleNotifier(SQLModel, table=True):
    """Which notifiers a rule notifies: deleting either side deletes the link (ON DELETE CASCADE)."""

    __tablename__ = "alert_rule_notifiers"

    rule_id: int = Field(foreign_key="alert_rules.id", ondelete="CASCADE", primary_key=True)
    notifier_id: int = Field(foreign_key="notifiers.id", ondelete="CASCADE", primary_key=True, index=True)


class Alert(SQLModel, table=True):
    """One episode of one rule on one series: firing until resolved. Pending episodes live in memory."""

    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="alert_rules.id", ondelete="CASCADE", index=True)
    series: str = Field(max_length=255)  # the series id the episode is about
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON(), nullable=False))
    state: str = Field(max_length=16, index=True)  # firing | resolved
    severity: str = Field(max_length=16)
    value: float | None = Field(default=None)  # the latest value seen while firing
    threshold: float = Field(default=0.0)
    pending_since: datetime = Field(sa_column=_ts())
    fired_at: datetime = Field(sa_column=_ts())
    resolved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_notified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    acked_by: str | None = Field(default=None, max_length=64)
    acked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    ack_comment: str = Field(default="", max_length=512)


class Silence(SQLModel, table=True):
    """Mutes notifications of alerts whose labels (and `alertname`, the rule name) match, for a window."""

    __tablename__ = "silences"

    id: int | None = Field(default=None, primary_key=True)
    matchers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON(), nullable=False))
    starts_at: datetime = Field(sa_column=_ts())
    ends_at: datetime = Field(sa_column=_ts())
    comment: str = Field(default="", max_length=512)
    created_by: str = Field(default="system", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Notifier(SQLModel, table=True):
    """A delivery channel: webhook, email or apprise; `config` is JSON and may hold secrets."""

    __tablename__ = "notifiers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    kind: str = Field(max_length=16)
    config: str = Field(default="{}", sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Delivery(SQLModel, table=True):
    """One notification to one notifier, with its attempts: the delivery log of an alert."""

    __tablename__ = "deliveries"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int | None = Field(default=None, foreign_key="alerts.id", ondelete="CASCADE", index=True)
    notifier_id: int = Field(foreign_key="notifiers.id", ondelete="CASCADE", index=True)
    event: str = Field(max_length=16)  # firing | resolved | repeat | test
    status: str = Field(max_length=16)  # pending | sent | failed
    attempts: int = Field(default=0)
    error: str = Field(default="", sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
