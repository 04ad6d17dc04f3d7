"""Silences: mute the notifications of matching alerts for a time window, with a comment saying why.

A silence's matchers are `{label: value}`; an alert matches when every matcher equals the alert's
label of that name. Besides the series' own labels, an alert carries `alertname` (the rule's name)
and `metric` (the metric's name). A silenced alert still fires and shows in the panel (flagged
"silenced"); only its notifications are held back. Silences are never deleted: ending one early sets
its end to now, so the history of who muted what stays. Both are audited (`silence.create|end`).
Pages and the API get `SilenceView`s, never database rows.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import col, select

from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.models import Silence
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import AuditService
from nox_ui.signals import Signal

LABEL_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_MATCHERS = 20
MAX_VALUE = 255
MAX_COMMENT = 512
MAX_DURATION = timedelta(days=365)
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SilenceDef:
    """A silence as the engine checks it: Unix-second window [starts, ends) and exact matchers."""

    id: int
    matchers: tuple[tuple[str, str], ...]
    starts: float
    ends: float

    @classmethod
    def of(cls, silence: SilenceView) -> SilenceDef:
        return cls(
            silence.id,
            tuple(sorted(silence.matchers.items())),
            silence.starts_at.timestamp(),
            silence.ends_at.timestamp(),
        )

    def active(self, ts: float) -> bool:
        return self.starts <= ts < self.ends

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.matchers)


@dataclass(frozen=True)
class SilenceView:
    """A stored silence as pages and the API see it."""

    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: Silence) -> SilenceView:
        assert row.id is not None
        matchers = row.matchers if isinstance(row.matchers, dict) else {}
        return cls(
            id=row.id,
            matchers={str(k): str(v) for k, v in matchers.items()},
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            comment=row.comment,
            created_by=row.created_by,
            created_at=row.created_at,
        )


def matchers_of(silence: SilenceView) -> dict[str, str]:
    return dict(silence.matchers)


def is_active(silence: SilenceView, now: datetime) -> bool:
    return silence.starts_at <= now < silence.ends_at


class SilenceIn(BaseModel):
    """Give either `ends_at` or `duration_seconds`; `starts_at` defaults to now."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    matchers: dict[str, str] = Field(
        examples=[{"alertname": "Root disk almost full", "mount": "/"}],
        description="label: value, all must match; `alertname` is the rule name, `metric` the metric name",
    )
    starts_at: datetime | None = Field(default=None, description="ISO 8601 or Unix seconds; default now")
    ends_at: datetime | None = Field(default=None, description="ISO 8601 or Unix seconds")
    duration_seconds: int | None = Field(default=None, ge=1, le=int(MAX_DURATION.total_seconds()))
    comment: str = Field(min_length=1, max_length=MAX_COMMENT, description="why: required")

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.ends_at is None) == (self.duration_seconds is None):
            raise ValueError("give either ends_at or duration_seconds")
        return self


def _utc(moment: datetime) -> datetime:
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"{moment.isoformat()} is out of range") from None


def clean_matchers(matchers: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(matchers, Mapping) or not matchers:
        raise Invalid("matchers: give at least one label: value (e.g. alertname or mount)")
    if len(matchers) > MAX_MATCHERS:
        raise Invalid(f"matchers: at most {MAX_MATCHERS}")
    cleaned = {}
    for key, value in matchers.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):  # `$` would let "key\n" pass
            raise Invalid(f"matchers: {key!r} is not a label name (letters, digits and _, not first a digit)")
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
            raise Invalid(f"matchers: the value of {key!r} must be 1 to {MAX_VALUE} characters of text")
        cleaned[key] = value
    return dict(sorted(cleaned.items()))


class SilenceService:
    def __init__(self, db: Database, audit: AuditService, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.audit = audit
        self.clock = clock
        # Every silence that has not ended yet, after each change.
        self.changed: Signal[builtins.list[SilenceDef]] = Signal("alerts.silences.changed")
        self._lock = threading.Lock()
        # Snapshots are read and handed over one at a time, so the last emit always carries the newest
        # committed state (two changes racing cannot leave the engine on the older one).
        self._notify_lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- reading -----------------------------------------------------------------------------------

    def list(self, active: bool | None = None, limit: int = 200) -> list[SilenceView]:
        """Newest first. `active=True`: in force now; `active=False`: ended or not started yet."""
        limit = max(1, min(limit, MAX_LIMIT))
        now = self.now()
        query = select(Silence).order_by(col(Silence.id).desc())
        if active is True:
            query = query.where(col(Silence.starts_at) <= now, col(Silence.ends_at) > now)
        elif active is False:
            query = query.where((col(Silence.starts_at) > now) | (col(Silence.ends_at) <= now))
        with self.db.session() as session:
            return [SilenceView.of(row) for row in session.exec(query.limit(limit)).all()]

    def get(self, silence_id: int) -> SilenceView:
        with self.db.session() as session:
            row = session.get(Silence, silence_id)
        if row is None:
            raise NotFound(f"no silence with id {silence_id}")
        return SilenceView.of(row)

    def definitions(self) -> builtins.list[SilenceDef]:
        """Every silence that has not ended: what the engine checks alerts against."""
        with self.db.session() as session:
            rows = session.exec(select(Silence).where(col(Silence.ends_at) > self.now())).all()
        return [SilenceDef.of(SilenceView.of(row)) for row in rows]

    # -- changing ----------------------------------------------------------------------------------

    def create(
        self,
        actor: Principal,
        matchers: Mapping[str, Any],
        comment: str,
        *,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        duration_seconds: int | None = None,
        ip: str = "",
    ) -> SilenceView:
        """Operators and admins. 422: no matchers, no comment, no end (or both kinds), an end not after
        the start or already past, longer than a year."""
        self._authorize(actor, "silence.create", ip)
        cleaned = clean_matchers(matchers)
        comment = (comment or "").strip()
        if not comment:
            raise Invalid("comment: say why these alerts are silenced")
        if len(comment) > MAX_COMMENT:
            raise Invalid(f"comment: at most {MAX_COMMENT} characters")
        now = self.now()
        start = _utc(starts_at) if starts_at is not None else now
        if abs(start - now) > MAX_DURATION:
            raise Invalid("starts_at must be within a year of now")
        if (ends_at is None) == (duration_seconds is None):
            raise Invalid("give either ends_at or duration_seconds")
        if duration_seconds is not None:
            if duration_seconds < 1:
                raise Invalid("duration_seconds must be at least 1")
            end = start + timedelta(seconds=duration_seconds)
        else:
            assert ends_at is not None
            end = _utc(ends_at)
        if end <= start:
            raise Invalid("ends_at must be after starts_at")
        if end <= now:
            raise Invalid("ends_at is in the past: this silence would never apply")
        if end - start > MAX_DURATION:
            raise Invalid("a silence lasts at most 365 days")
        row = Silence(
            matchers=cleaned,
            starts_at=start,
            ends_at=end,
            comment=comment,
            created_by=(actor.username if actor else "system")[:64],
        )
        with self._lock, self.db.session() as session:
            session.add(row)
            session.flush()
            self.audit.record(
                session,
                actor=actor,
                action="silence.create",
                outcome="success",
                target_type="silence",
                target_id=row.id or "",
                target_label=_label(cleaned),
                details={
                    "matchers": cleaned,
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                    "comment": comment,
                },
                ip=ip,
            )
            session.commit()
        self._notify()
        return SilenceView.of(row)

    def end(self, actor: Principal, silence_id: int, *, ip: str = "") -> SilenceView:
        """End a silence now (one not started yet is cancelled). 409 when it has already ended."""
        self._authorize(actor, "silence.end", ip)
        now = self.now()
        with self._lock, self.db.session() as session:
            row = session.get(Silence, silence_id)
            if row is None:
                raise NotFound(f"no silence with id {silence_id}")
            if row.ends_at <= now:
                raise Conflict(f"silence {silence_id} already ended at {row.ends_at.isoformat()}")
            planned = row.ends_at
            row.ends_at = now
            row.starts_at = min(row.starts_at, now)
            session.add(row)
            self.audit.record(
                session,
                actor=actor,
                action="silence.end",
                outcome="success",
                target_type="silence",
                target_id=silence_id,
                target_label=_label(SilenceView.of(row).matchers),
                details={"ended_at": now.isoformat(), "planned_end": planned.isoformat()},
                ip=ip,
            )
            session.commit()
        self._notify()
        return SilenceView.of(row)

    def _authorize(self, actor: Principal, action: str, ip: str) -> None:
        self.audit.authorize(actor, Role.OPERATOR, attempted=action, target_type="silence", ip=ip)

    def _notify(self) -> None:
        with self._notify_lock:
            self.changed.emit(self.definitions())


def _label(matchers: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in matchers.items())[:256]
