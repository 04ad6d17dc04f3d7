"""Alert rules, alerts (pending, firing, resolved), acknowledgements, silences and the rule preview.

Viewers read; operators and admins change rules, acknowledge, silence and preview. The rules routes
are declared before `/alerts/{alert_id}` so that `/alerts/rules` is never read as an alert id."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nox_ui.alerts.queries import AlertView
from nox_ui.alerts.rules import RuleIn, RulePatch, RuleView
from nox_ui.alerts.silences import SilenceIn, SilenceView, is_active
from nox_ui.alerts.state import Episode
from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.roles import Principal, Role

router = APIRouter(tags=["alerts"])

RuleId = Path(ge=1, le=2**63 - 1, description="the rule's id")
AlertId = Path(ge=1, le=2**63 - 1, description="the alert's id")
SilenceId = Path(ge=1, le=2**63 - 1, description="the silence's id")


class RuleOut(BaseModel):
    id: int
    name: str
    kind: str
    metric: str
    op: str
    threshold: float
    for_seconds: int
    clear_threshold: float | None
    severity: str
    notifiers: list[int]
    repeat_seconds: int | None
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: RuleView) -> RuleOut:
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
            notifiers=list(row.notifiers),
            repeat_seconds=row.repeat_seconds,
            enabled=row.enabled,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class AlertOut(BaseModel):
    id: int | None = Field(description="null while pending: pending alerts are not stored")
    key: str = Field(description="<rule id>:<series>, for pending alerts too")
    rule_id: int
    rule_name: str
    severity: str
    series: str
    labels: dict[str, str]
    state: str
    value: float | None
    threshold: float
    since: datetime = Field(description="when the condition started to hold")
    fired_at: datetime | None
    resolved_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str
    silenced: bool

    @classmethod
    def of(cls, view: AlertView) -> AlertOut:
        return cls(**asdict(view))


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=512)


class SilenceOut(BaseModel):
    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, row: SilenceView, now: datetime) -> SilenceOut:
        return cls(
            id=row.id,
            matchers=dict(row.matchers),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            comment=row.comment,
            created_by=row.created_by,
            created_at=row.created_at,
            active=is_active(row, now),
        )


class EpisodeOut(BaseModel):
    series: str
    pending_since: datetime
    start: datetime = Field(description="when it would have started firing")
    end: datetime | None = Field(description="when it would have resolved; null: still firing")
    peak: float

    @classmethod
    def of(cls, episode: Episode) -> EpisodeOut:
        return cls(
            series=episode.series,
            pending_since=_dt(episode.pending_since),
            start=_dt(episode.start),
            end=_dt(episode.end) if episode.end is not None else None,
            peak=episode.peak,
        )


class PreviewOut(BaseModel):
    since: datetime
    until: datetime
    resolution_seconds: int
    series: list[str]
    episodes: list[EpisodeOut]
    note: str


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- rules ---------------------------------------------------------------------------------------------


@router.get("/alerts/rules", response_model=list[RuleOut], summary="Every alert rule")
def list_rules(
    _viewer: Principal = Depends(require_role(Role.VIEWER)), services: Services = Depends(get_services)
) -> list[RuleOut]:
    return [RuleOut.of(row) for row in services.alerts.rules.list()]


@router.post("/alerts/rules", response_model=RuleOut, status_code=201, summary="Create a rule (operator)")
def create_rule(
    body: RuleIn,
    request: Request,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> RuleOut:
    """Unknown metric or label, bad operator, negative duration, clear_threshold on the wrong side of
    the threshold, unknown notifier id: 422. A name in use: 409. The engine applies it at once."""
    return RuleOut.of(services.alerts.rules.create(operator, body, ip=client_ip(request)))


@router.post(
    "/alerts/rules/preview", response_model=PreviewOut, summary="What a rule would have fired (operator)"
)
def preview_rule(
    request: Request,
    body: RuleIn = Body(),
    hours: float = Query(default=24, gt=0, le=168, description="how far back"),
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> PreviewOut:
    """The episodes the rule (saved or not) would have fired over the last `hours`, replayed from the
    stored one-minute history by the engine's own state machine (for_seconds at minute resolution)."""
    result = services.alerts.preview(operator, body, hours=hours, ip=client_ip(request))
    return PreviewOut(
        since=_dt(result.since),
        until=_dt(result.until),
        resolution_seconds=result.resolution_seconds,
        series=result.series,
        episodes=[EpisodeOut.of(e) for e in result.episodes],
        note=result.note,
    )


@router.get("/alerts/rules/{rule_id}", response_model=RuleOut, summary="One alert rule")
def get_rule(
    rule_id: int = RuleId,
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> RuleOut:
    return RuleOut.of(services.alerts.rules.get(rule_id))


@router.patch("/alerts/rules/{rule_id}", response_model=RuleOut, summary="Change a rule (operator)")
def update_rule(
    body: RulePatch,
    request: Request,
    rule_id: int = RuleId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> RuleOut:
    """Only the fields given change; the result is validated as a whole rule (422, nothing changes)."""
    return RuleOut.of(services.alerts.rules.update(operator, rule_id, body, ip=client_ip(request)))


@router.delete("/alerts/rules/{rule_id}", status_code=204, summary="Delete a rule (operator)")
def delete_rule(
    request: Request,
    rule_id: int = RuleId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> Response:
    """Its alert history goes with it; its firing alerts resolve at once."""
    services.alerts.rules.delete(operator, rule_id, ip=client_ip(request))
    return Response(status_code=204)


# -- alerts --------------------------------------------------------------------------------------------


@router.get("/alerts", response_model=list[AlertOut], summary="Pending, firing and resolved alerts")
def list_alerts(
    state: Literal["pending", "firing", "resolved"] | None = Query(
        default=None, description="default: all, pending first, then firing, then resolved"
    ),
    rule_id: int | None = Query(default=None, ge=1, le=2**63 - 1),
    limit: int = Query(default=100, ge=1, le=1000),
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> list[AlertOut]:
    views = services.alerts.queries.alerts(state, limit=limit, rule_id=rule_id)
    return [AlertOut.of(view) for view in views]


@router.get("/alerts/{alert_id}", response_model=AlertOut, summary="One firing or resolved alert")
def get_alert(
    alert_id: int = AlertId,
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> AlertOut:
    return AlertOut.of(services.alerts.queries.get(alert_id))


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge an alert (operator)")
def ack_alert(
    request: Request,
    alert_id: int = AlertId,
    body: AckIn | None = None,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> AlertOut:
    """Records who and when; stops repeat notifications. Resolved or already acknowledged: 409."""
    comment = body.comment if body else ""
    view = services.alerts.queries.ack(operator, alert_id, comment, ip=client_ip(request))
    return AlertOut.of(view)


# -- silences ------------------------------------------------------------------------------------------


@router.get("/silences", response_model=list[SilenceOut], summary="Silences, newest first")
def list_silences(
    active: bool | None = Query(default=None, description="true: in force now; false: ended or not started"),
    limit: int = Query(default=200, ge=1, le=1000),
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> list[SilenceOut]:
    silences = services.alerts.silences
    now = silences.now()
    return [SilenceOut.of(row, now) for row in silences.list(active, limit)]


@router.post("/silences", response_model=SilenceOut, status_code=201, summary="Silence alerts (operator)")
def create_silence(
    body: SilenceIn,
    request: Request,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> SilenceOut:
    """Matching alerts still fire and show, flagged silenced; nobody is notified. 422: no matchers, no
    comment, an end not after the start or already past."""
    silences = services.alerts.silences
    row = silences.create(
        operator,
        body.matchers,
        body.comment,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        duration_seconds=body.duration_seconds,
        ip=client_ip(request),
    )
    return SilenceOut.of(row, silences.now())


@router.get("/silences/{silence_id}", response_model=SilenceOut, summary="One silence")
def get_silence(
    silence_id: int = SilenceId,
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> SilenceOut:
    silences = services.alerts.silences
    return SilenceOut.of(silences.get(silence_id), silences.now())


@router.post("/silences/{silence_id}/end", response_model=SilenceOut, summary="End a silence now (operator)")
def end_silence(
    request: Request,
    silence_id: int = SilenceId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> SilenceOut:
    """Kept for the record with its end set to now. Already ended: 409."""
    silences = services.alerts.silences
    row = silences.end(operator, silence_id, ip=client_ip(request))
    return SilenceOut.of(row, silences.now())


@router.delete("/silences/{silence_id}", status_code=204, summary="End a silence now (operator)")
def delete_silence(
    request: Request,
    silence_id: int = SilenceId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> Response:
    """The same as POST /silences/{id}/end: the silence stays in the list, ended."""
    services.alerts.silences.end(operator, silence_id, ip=client_ip(request))
    return Response(status_code=204)
