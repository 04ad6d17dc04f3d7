"""Alert rules: the request models, validation, selectors, and the service that stores them.

A rule watches a *selector*: a metric name (every series of that metric) or `name{label="v",...}`
(only the series whose labels equal every given value). A `threshold` rule compares each matching
series with `op threshold`; a `nodata` rule fires when no sample carried any matching series for
`for_seconds` (op and threshold are ignored). Every change is validated as a whole, written together
with its audit event (`alert.rule.create|update|delete`), then handed to the listeners (the engine
recompiles at once, no restart). Pages and the API get `RuleView`s, never database rows; a rule's
notifiers are rows of `alert_rule_notifiers`, so deleting a notifier drops it from every rule.
"""

from __future__ import annotations

import builtins
import operator
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.metrics.series import MetricSpec, parse_series, series_id
from nox_ui.models import AlertRule, AlertRuleNotifier, Notifier, utcnow
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import AuditService
from nox_ui.signals import Signal

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["info", "warning", "critical"]
Kind = Literal["threshold", "nodata"]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "critical")
DAY = 86400
MAX_FOR_SECONDS = 7 * DAY
MIN_REPEAT_SECONDS = 60
MAX_REPEAT_SECONDS = 30 * DAY
MIN_NODATA_SECONDS = 10  # below a few sample intervals, jitter alone would fire a no-data rule
MAX_NOTIFIERS = 50
# A notifier id as the database can hold it: larger integers overflow SQLite's 64 bits (a 500).
NotifierRef = Annotated[int, Field(ge=1, le=2**63 - 1)]
MAX_DESCRIPTION = 10_000
# The fields of a rule that decide when it fires; changing one drops the rule's pending episodes.
CONDITION_FIELDS = ("kind", "metric", "op", "threshold", "for_seconds", "clear_threshold")


# -- selectors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """`name` or `name{label="value",...}`: a series matches when its name is `name` and every
    matcher's label has exactly that value (labels the selector does not name are free)."""

    name: str
    matchers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Selector:
        name, labels = parse_series(text)
        return cls(name, tuple(sorted(labels.items())))

    @property
    def text(self) -> str:
        """The canonical form (labels sorted), which is how rules are stored."""
        return series_id(self.name, dict(self.matchers))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.matchers)


# -- the rule as the engine sees it ------------------------------------------------------------------


@dataclass(frozen=True)
class RuleDef:
    """A validated rule, free of the database: what the engine compiles and the preview replays.
    `id` is 0 for a rule that is not stored (a preview of an unsaved rule, a benchmark)."""

    id: int
    name: str
    metric: str
    kind: str = "threshold"
    op: str = ">"
    threshold: float = 0.0
    for_seconds: int = 0
    clear_threshold: float | None = None
    severity: str = "warning"
    notifiers: tuple[int, ...] = ()
    repeat_seconds: int | None = None
    enabled: bool = True
    description: str = ""

    @property
    def selector(self) -> Selector:
        return Selector.parse(self.metric)

    def same_condition(self, other: RuleDef) -> bool:
        return all(getattr(self, key) == getattr(other, key) for key in CONDITION_FIELDS)


@dataclass(frozen=True)
class RuleView:
    """A stored rule as pages and the API see it; `notifiers` in ascending id order."""

    id: int
    name: str
    kind: str
    metric: str
    op: str
    threshold: float
    for_seconds: int
    clear_threshold: float | None
    severity: str
    notifiers: tuple[int, ...]
    repeat_seconds: int | None
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: AlertRule, notifiers: Iterable[int]) -> RuleView:
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            metric=row.metric,
            op=row.op,
            threshold=row.threshold,
            for_seconds=row.for_seconds,
            clear_threshold=row.clear_threshold,
            severity=row.severity,
            notifiers=tuple(sorted(notifiers)),
            repeat_seconds=row.repeat_seconds,
            enabled=row.enabled,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    def draft(cls, **fields: Any) -> RuleView:
        """An unsaved rule (id 0) with the defaults of `RuleIn`: what a "new rule" form starts from."""
        now = utcnow()
        defaults: dict[str, Any] = {
            "id": 0,
            "name": "",
            "kind": "threshold",
            "metric": "",
            "op": ">",
            "threshold": 0.0,
            "for_seconds": 0,
            "clear_threshold": None,
            "severity": "warning",
            "notifiers": (),
            "repeat_seconds": None,
            "enabled": True,
            "description": "",
            "created_at": now,
            "updated_at": now,
        }
        return cls(**{**defaults, **fields})

    def definition(self) -> RuleDef:
        return RuleDef(
            id=self.id,
            name=self.name,
            metric=self.metric,
            kind=self.kind,
            op=self.op,
            threshold=self.threshold,
            for_seconds=self.for_seconds,
            clear_threshold=self.clear_threshold,
            severity=self.severity,
            notifiers=self.notifiers,
            repeat_seconds=self.repeat_seconds,
            enabled=self.enabled,
            description=self.description,
        )

    def fields(self) -> dict[str, Any]:
        """The rule's settable fields, as audited and as a patch starts from."""
        return {
            "name": self.name,
            "metric": self.metric,
            "kind": self.kind,
            "op": self.op,
            "threshold": self.threshold,
            "for_seconds": self.for_seconds,
            "clear_threshold": self.clear_threshold,
            "severity": self.severity,
            "notifiers": list(self.notifiers),
            "repeat_seconds": self.repeat_seconds,
            "enabled": self.enabled,
            "description": self.description,
        }


def notifier_ids(rule: RuleView) -> list[int]:
    return list(rule.notifiers)


# -- request models ----------------------------------------------------------------------------------


def check_clear_threshold(op: str, threshold: float, clear: float | None) -> None:
    """Hysteresis only makes sense on the safe side of the threshold: a firing `> 90` rule that clears
    at 80 stays firing between 80 and 90. Raise ValueError with the reason otherwise."""
    if clear is None:
        return
    if op in (">", ">="):
        if clear > threshold:
            raise ValueError(
                f"clear_threshold must be at most the threshold for {op!r}: the alert fires above "
                f"{threshold:g} and resolves only at or below clear_threshold"
            )
    elif op in ("<", "<="):
        if clear < threshold:
            raise ValueError(
                f"clear_threshold must be at least the threshold for {op!r}: the alert fires below "
                f"{threshold:g} and resolves only at or above clear_threshold"
            )
    else:
        raise ValueError(f"clear_threshold (hysteresis) needs >, >=, < or <=; it means nothing for {op!r}")


class RuleIn(BaseModel):
    """A whole rule, as created. `kind` is "threshold" (default) or "nodata"; a no-data rule fires when
    no sample carried any series of `metric` for `for_seconds` and ignores `op` and `threshold`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128, examples=["Root disk almost full"])
    metric: str = Field(
        min_length=1,
        max_length=255,
        examples=['disk.used_percent{mount="/"}'],
        description='a metric name (every series) or name{label="value",...}',
    )
    kind: Kind = "threshold"
    op: Op = ">"
    threshold: float = Field(default=0.0, allow_inf_nan=False)
    for_seconds: int = Field(default=0, ge=0, le=MAX_FOR_SECONDS, description="must hold this long")
    clear_threshold: float | None = Field(
        default=None, allow_inf_nan=False, description="hysteresis: a firing alert resolves only past this"
    )
    severity: Severity = "warning"
    notifiers: list[NotifierRef] = Field(default_factory=list, max_length=MAX_NOTIFIERS)
    repeat_seconds: int | None = Field(
        default=None, ge=MIN_REPEAT_SECONDS, le=MAX_REPEAT_SECONDS, description="re-notify while firing"
    )
    enabled: StrictBool = True
    description: str = Field(default="", max_length=MAX_DESCRIPTION, description="runbook text")

    @model_validator(mode="after")
    def _consistent(self) -> RuleIn:
        if any(ch in self.name for ch in "\r\n\t\x00"):
            raise ValueError("name must be one line of text")
        if self.kind == "nodata":
            if self.for_seconds < MIN_NODATA_SECONDS:
                raise ValueError(
                    f"a nodata rule needs for_seconds of at least {MIN_NODATA_SECONDS}: how long the "
                    "metric must stay silent"
                )
            if self.clear_threshold is not None:
                raise ValueError("a nodata rule has no clear_threshold")
        else:
            check_clear_threshold(self.op, self.threshold, self.clear_threshold)
        if len(set(self.notifiers)) != len(self.notifiers):
            raise ValueError("notifiers lists an id twice")
        return self


class RulePatch(BaseModel):
    """Only the fields given change; the result is validated as a whole rule. `null` clears
    `clear_threshold` and `repeat_seconds`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=128)
    metric: str | None = Field(default=None, min_length=1, max_length=255)
    kind: Kind | None = None
    op: Op | None = None
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    for_seconds: int | None = Field(default=None, ge=0, le=MAX_FOR_SECONDS)
    clear_threshold: float | None = Field(default=None, allow_inf_nan=False)
    severity: Severity | None = None
    notifiers: list[NotifierRef] | None = Field(default=None, max_length=MAX_NOTIFIERS)
    repeat_seconds: int | None = Field(default=None, ge=MIN_REPEAT_SECONDS, le=MAX_REPEAT_SECONDS)
    enabled: StrictBool | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)

    def changes(self) -> dict[str, Any]:
        """The fields the caller sent; `null` is kept only where it means something."""
        sent = self.model_dump(exclude_unset=True)
        nullable = {"clear_threshold", "repeat_seconds"}
        return {key: value for key, value in sent.items() if value is not None or key in nullable}


def _readable(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_rule(data: RuleIn | Mapping[str, Any]) -> RuleIn:
    """A RuleIn from a model or a plain mapping (the UI's form); Invalid with every reason otherwise."""
    if isinstance(data, RuleIn):
        return data
    try:
        return RuleIn.model_validate(dict(data))
    except ValidationError as exc:
        raise Invalid(_readable(exc)) from None


def _notifiers_of(session: Session, rule_ids: Iterable[int]) -> dict[int, builtins.list[int]]:
    found: dict[int, builtins.list[int]] = {}
    links = session.exec(
        select(AlertRuleNotifier).where(col(AlertRuleNotifier.rule_id).in_(builtins.list(rule_ids)))
    ).all()
    for link in links:
        found.setdefault(link.rule_id, []).append(link.notifier_id)
    return found


def _view(session: Session, row: AlertRule) -> RuleView:
    assert row.id is not None
    return RuleView.of(row, _notifiers_of(session, [row.id]).get(row.id, []))


def _set_notifiers(session: Session, rule_id: int, ids: Iterable[int]) -> None:
    session.execute(delete(AlertRuleNotifier).where(col(AlertRuleNotifier.rule_id) == rule_id))
    session.add_all([AlertRuleNotifier(rule_id=rule_id, notifier_id=i) for i in ids])


# -- the service -------------------------------------------------------------------------------------


class RuleService:
    def __init__(self, db: Database, audit: AuditService, specs: Mapping[str, MetricSpec]) -> None:
        self.db = db
        self.audit = audit
        self.specs = specs  # the metrics the sampler collects: a rule on anything else is refused
        # Every rule (enabled or not), after each change.
        self.changed: Signal[builtins.list[RuleDef]] = Signal("alerts.rules.changed")
        self._lock = threading.Lock()
        # Snapshots are read and handed over one at a time, so the last emit always carries the newest
        # committed state (two changes racing cannot leave the engine on the older one).
        self._notify_lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------------

    def list(self) -> list[RuleView]:
        """Every rule, by name."""
        with self.db.session() as session:
            rows = session.exec(select(AlertRule).order_by(col(AlertRule.name))).all()
            notifiers = _notifiers_of(session, [row.id for row in rows if row.id is not None])
        return [RuleView.of(row, notifiers.get(row.id or 0, [])) for row in rows]

    def definitions(self) -> builtins.list[RuleDef]:
        return [view.definition() for view in self.list()]

    def get(self, rule_id: int) -> RuleView:
        with self.db.session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                raise NotFound(f"no alert rule with id {rule_id}")
            return _view(session, row)

    # -- validation --------------------------------------------------------------------------------

    def check(self, data: RuleIn | Mapping[str, Any], session: Session | None = None) -> RuleIn:
        """Validate a whole rule: the model's checks, then a known metric with known labels and
        existing notifiers. Returns the rule with its selector in canonical form."""
        rule = parse_rule(data)
        selector = Selector.parse(rule.metric)
        spec = self.specs.get(selector.name)
        if spec is None:
            known = ", ".join(sorted(self.specs)[:8])
            raise Invalid(
                f"metric: unknown metric {selector.name!r}; see /api/v1/metrics/names (e.g. {known}, ...)"
            )
        unknown_labels = sorted({key for key, _ in selector.matchers} - set(spec.labels))
        if unknown_labels:
            has = ", ".join(spec.labels) if spec.labels else "no labels"
            raise Invalid(f"metric: {selector.name} has {has}; unknown label {unknown_labels[0]!r}")
        if rule.notifiers:
            missing = self._missing_notifiers(rule.notifiers, session)
            if missing:
                raise Invalid(f"notifiers: no notifier with id {', '.join(map(str, missing))}")
        return rule.model_copy(update={"metric": selector.text, "notifiers": sorted(rule.notifiers)})

    def _missing_notifiers(self, ids: builtins.list[int], session: Session | None) -> builtins.list[int]:
        if session is None:
            with self.db.session() as own:
                return self._missing_notifiers(ids, own)
        found = set(session.exec(select(Notifier.id).where(col(Notifier.id).in_(ids))).all())
        return sorted(set(ids) - found)

    def definition(self, data: RuleIn | Mapping[str, Any]) -> RuleDef:
        """A checked, unsaved rule (id 0) for the preview."""
        rule = self.check(data)
        return RuleDef(id=0, **{**rule.model_dump(), "notifiers": tuple(rule.notifiers)})

    # -- changing ----------------------------------------------------------------------------------

    def create(self, actor: Principal, data: RuleIn | Mapping[str, Any], *, ip: str = "") -> RuleView:
        """Operators and admins (the panel itself: `roles.PANEL`). 422 for an invalid rule, 409 for a
        name in use."""
        name = data.name if isinstance(data, RuleIn) else str(data.get("name", ""))
        self.require_operator(actor, "alert.rule.create", name, ip)
        with self._lock, self.db.session() as session:
            rule = self.check(data, session)
            if session.exec(select(AlertRule.id).where(AlertRule.name == rule.name)).first():
                raise Conflict(f"an alert rule named {rule.name!r} already exists")
            row = AlertRule(**rule.model_dump(exclude={"notifiers"}))
            session.add(row)
            try:
                session.flush()
                assert row.id is not None
                _set_notifiers(session, row.id, rule.notifiers)
                view = RuleView.of(row, rule.notifiers)
                self.audit.record(
                    session,
                    actor=actor,
                    action="alert.rule.create",
                    outcome="success",
                    target_type="alert_rule",
                    target_id=row.id or "",
                    target_label=row.name,
                    details=view.fields(),
                    ip=ip,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(f"an alert rule named {rule.name!r} already exists") from None
        self._notify()
        return RuleView.of(row, rule.notifiers)

    def update(
        self,
        actor: Principal,
        rule_id: int,
        patch: RulePatch | Mapping[str, Any],
        *,
        ip: str = "",
    ) -> RuleView:
        """Change the fields given; the result is validated as a whole. Audited with old → new."""
        self.require_operator(actor, "alert.rule.update", str(rule_id), ip)
        if not isinstance(patch, RulePatch):
            try:
                patch = RulePatch.model_validate(dict(patch))
            except ValidationError as exc:
                raise Invalid(_readable(exc)) from None
        with self._lock, self.db.session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                raise NotFound(f"no alert rule with id {rule_id}")
            current = _view(session, row)
            before = current.fields()
            # A deleted notifier has already left the rule (ON DELETE CASCADE), so it never blocks an
            # edit (disabling the rule during an incident included); new ids are checked.
            rule = self.check({**before, **patch.changes()}, session)
            after = rule.model_dump()
            diff = {
                key: {"old": before[key], "new": after[key]} for key in before if before[key] != after[key]
            }
            if not diff:
                return current
            if "name" in diff:
                taken = session.exec(
                    select(AlertRule.id).where(AlertRule.name == rule.name, AlertRule.id != rule_id)
                ).first()
                if taken:
                    raise Conflict(f"an alert rule named {rule.name!r} already exists")
            for key, value in after.items():
                if key != "notifiers":
                    setattr(row, key, value)
            row.updated_at = utcnow()
            session.add(row)
            try:
                if "notifiers" in diff:
                    _set_notifiers(session, rule_id, rule.notifiers)
                session.flush()
                self.audit.record(
                    session,
                    actor=actor,
                    action="alert.rule.update",
                    outcome="success",
                    target_type="alert_rule",
                    target_id=rule_id,
                    target_label=row.name,
                    details=diff,
                    ip=ip,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(f"an alert rule named {rule.name!r} already exists") from None
        self._notify()
        return RuleView.of(row, rule.notifiers)

    def delete(self, actor: Principal, rule_id: int, *, ip: str = "") -> None:
        """Its alert history goes with it (ON DELETE CASCADE); firing episodes end at once."""
        self.require_operator(actor, "alert.rule.delete", str(rule_id), ip)
        with self._lock, self.db.session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                raise NotFound(f"no alert rule with id {rule_id}")
            details = _view(session, row).fields()
            session.delete(row)
            self.audit.record(
                session,
                actor=actor,
                action="alert.rule.delete",
                outcome="success",
                target_type="alert_rule",
                target_id=rule_id,
                target_label=details["name"],
                details=details,
                ip=ip,
            )
            session.commit()
        self._notify()

    def require_operator(self, actor: Principal, action: str, target: str = "", ip: str = "") -> None:
        """Operator or admin, or Forbidden with the refusal in the audit log."""
        self.audit.authorize(
            actor, Role.OPERATOR, attempted=action, target_type="alert_rule", target_label=target, ip=ip
        )

    def _notify(self) -> None:
        with self._notify_lock:
            self.changed.emit(self.definitions())
