"""Reading alerts and acknowledging them: the views the API and the pages list.

Pending episodes come from the engine's memory, firing and resolved ones from the `alerts` table (a
firing one shows the engine's latest value and whether a silence holds it now). An acknowledgement is
stored with its audit event, then handed to the engine so the episode stops repeating.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import select

from nox_ui.alerts.evaluation import AlertEngine
from nox_ui.alerts.rules import RuleDef
from nox_ui.alerts.state import AlertState, Condition, Track
from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.models import Alert, AlertRule
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import AuditService

MAX_COMMENT = 512
MAX_LIMIT = 1000


@dataclass(frozen=True)
class AlertView:
    """One alert as the API and the UI list it. Pending alerts (in memory only) have no `id`; `key`
    (`<rule id>:<series>`) names every alert, pending or not."""

    id: int | None
    key: str
    rule_id: int
    rule_name: str
    severity: str
    series: str
    labels: dict[str, str]
    state: AlertState
    value: float | None
    threshold: float
    since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str
    silenced: bool


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


Live = Mapping[tuple[int, str], tuple[RuleDef, Track]]


class AlertQueries:
    def __init__(self, db: Database, engine: AlertEngine, audit: AuditService) -> None:
        self.db = db
        self.engine = engine
        self.audit = audit

    def alerts(
        self, state: str | None = None, *, limit: int = 100, rule_id: int | None = None
    ) -> list[AlertView]:
        """Pending (from memory), firing and resolved (from the database), newest first within each;
        `state=None` lists them all in that order."""
        if state not in (None, *AlertState):
            raise Invalid("state must be pending, firing or resolved")
        limit = max(1, min(limit, MAX_LIMIT))
        now = self.engine.clock()
        live = self.engine.live()
        views: list[AlertView] = []
        if state in (None, AlertState.PENDING):
            for (rid, sid), (rule, track) in live.items():
                if track.fired_at is None and (rule_id is None or rid == rule_id):
                    views.append(self._pending_view(rule, sid, track, now))
            views.sort(key=lambda v: v.since, reverse=True)
        for wanted in (AlertState.FIRING, AlertState.RESOLVED):
            if state not in (None, wanted) or len(views) >= limit:
                continue
            order = Alert.fired_at if wanted == AlertState.FIRING else Alert.resolved_at
            query = select(Alert, AlertRule.name).join(AlertRule).where(Alert.state == wanted)
            if rule_id is not None:
                query = query.where(Alert.rule_id == rule_id)
            with self.db.session() as session:
                rows = session.exec(query.order_by(order.desc()).limit(limit - len(views))).all()  # type: ignore[union-attr]
            views.extend(self._row_view(row, name, live, now) for row, name in rows)
        return views[:limit]

    def get(self, alert_id: int) -> AlertView:
        with self.db.session() as session:
            found = session.exec(
                select(Alert, AlertRule.name).join(AlertRule).where(Alert.id == alert_id)
            ).first()
        if found is None:
            raise NotFound(f"no alert with id {alert_id}")
        return self._row_view(found[0], found[1], self.engine.live(), self.engine.clock())

    def _pending_view(self, rule: RuleDef, sid: str, track: Track, now: float) -> AlertView:
        labels = self.engine.series_labels(rule, sid)
        return AlertView(
            id=None,
            key=f"{rule.id}:{sid}",
            rule_id=rule.id,
            rule_name=rule.name,
            severity=rule.severity,
            series=sid,
            labels=labels,
            state=AlertState.PENDING,
            value=track.value,
            threshold=Condition.of(rule).threshold,
            since=_dt(track.since),
            fired_at=None,
            resolved_at=None,
            acked_by=None,
            acked_at=None,
            ack_comment="",
            silenced=self.engine.silenced(rule, labels, now),
        )

    def _row_view(self, row: Alert, rule_name: str, live: Live, now: float) -> AlertView:
        labels = dict(row.labels or {})
        value = row.value
        silenced = False
        current = live.get((row.rule_id, row.series)) if row.state == AlertState.FIRING else None
        if current is not None and current[1].alert_id in (row.id, None):
            value = current[1].value if current[1].value == current[1].value else value
            silenced = self.engine.silenced(current[0], labels, now)
        return AlertView(
            id=row.id,
            key=f"{row.rule_id}:{row.series}",
            rule_id=row.rule_id,
            rule_name=rule_name,
            severity=row.severity,
            series=row.series,
            labels=labels,
            state=AlertState(row.state),
            value=value,
            threshold=row.threshold,
            since=row.pending_since,
            fired_at=row.fired_at,
            resolved_at=row.resolved_at,
            acked_by=row.acked_by,
            acked_at=row.acked_at,
            ack_comment=row.ack_comment,
            silenced=silenced,
        )

    def ack(self, actor: Principal, alert_id: int, comment: str = "", *, ip: str = "") -> AlertView:
        """Acknowledge a firing alert (operators and admins): records who and when, stops repeats.
        404 for an unknown id, 409 for a resolved or already acknowledged alert."""
        self.audit.authorize(
            actor, Role.OPERATOR, attempted="alert.ack", target_type="alert", target_id=alert_id, ip=ip
        )
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise Invalid(f"comment: at most {MAX_COMMENT} characters")
        who = (actor.username if actor else "system")[:64]
        with self.db.session() as session:
            row = session.get(Alert, alert_id)
            if row is None:
                raise NotFound(f"no alert with id {alert_id}")
            if row.state != AlertState.FIRING:
                raise Conflict(f"alert {alert_id} has resolved; only a firing alert can be acknowledged")
            if row.acked_by:
                raise Conflict(f"alert {alert_id} was already acknowledged by {row.acked_by}")
            row.acked_by, row.acked_at, row.ack_comment = who, _dt(self.engine.clock()), comment
            session.add(row)
            rule = session.get(AlertRule, row.rule_id)
            self.audit.record(
                session,
                actor=actor,
                action="alert.ack",
                outcome="success",
                target_type="alert",
                target_id=alert_id,
                target_label=f"{rule.name if rule else row.rule_id} on {row.series}"[:256],
                details={"rule_id": row.rule_id, "series": row.series, "comment": comment},
                ip=ip,
            )
            session.commit()
        self.engine.acknowledged(row.rule_id, row.series, alert_id, who)
        return self.get(alert_id)
