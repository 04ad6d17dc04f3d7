"""Notifiers (one of the registered kinds: nox_ui/alerts/kinds/), their test message and the delivery log.

Operators and admins read, change and test them; viewers get 403 (a notifier's target and the
delivery log describe internal services). Secrets are write-only: a webhook's `secret` shows as
`secret_set`, apprise URLs (they embed tokens) and the query string of a webhook URL are masked, and
a PATCH that leaves a secret out keeps it. A target that is internal as written (an IP literal,
`localhost`) is refused with 422 unless an admin listed it in `notify_allowed_hosts`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nox_ui.alerts import kinds
from nox_ui.alerts.notify import PENDING, DeliveryView, NotifierView
from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.roles import Principal, Role

router = APIRouter(tags=["notifiers"])

NotifierId = Path(ge=1, le=2**63 - 1, description="the notifier's id")
# From the registry as it is when the API is built (a plugin registers its kind before that).
CONFIG_DOC = "; ".join(f"{kind.name}: {kind.config_doc}" for kind in kinds.all_kinds())
KIND_DOC = ", ".join(kinds.names())


class NotifierOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any] = Field(description="without secrets: " + CONFIG_DOC)
    created_at: datetime
    updated_at: datetime
    available: bool = Field(description="false while its kind is not registered (its plugin is disabled)")

    @classmethod
    def of(cls, view: NotifierView) -> NotifierOut:
        return cls(
            id=view.id,
            name=view.name,
            kind=view.kind,
            config=view.config,
            created_at=view.created_at,
            updated_at=view.updated_at,
            available=view.available,
        )


class NotifierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256, examples=["ops pager"])
    kind: str = Field(min_length=1, max_length=16, description=KIND_DOC)
    config: dict[str, Any] = Field(description=CONFIG_DOC)


class NotifierPatchIn(BaseModel):
    """Only the fields given change. Config fields left out keep their stored value (so a secret is
    never needed again); `"secret": null` removes a webhook's secret; a new `kind` needs its whole config."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=256)
    kind: str | None = Field(default=None, min_length=1, max_length=16)
    config: dict[str, Any] | None = None


class DeliveryOut(BaseModel):
    id: int
    alert_id: int | None
    notifier_id: int
    notifier_name: str
    notifier_kind: str
    event: str = Field(description="firing, resolved, repeat or test")
    status: str = Field(description="pending, sent or failed")
    attempts: int
    error: str = Field(
        description="one line per failed attempt: 'attempt N at <UTC time>: <error>', the error being a "
        "status code ('HTTP 500 Internal Server Error'), an error class ('ConnectError') or a refusal "
        "of the outbound guard; never the text the target answered"
    )
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        return cls(
            id=view.id,
            alert_id=view.alert_id,
            notifier_id=view.notifier_id,
            notifier_name=view.notifier_name,
            notifier_kind=view.notifier_kind,
            event=view.event,
            status=view.status,
            attempts=view.attempts,
            error=view.error,
            created_at=view.created_at,
            next_attempt_at=view.next_attempt_at,
            sent_at=view.sent_at,
        )


@router.get("/notifiers", response_model=list[NotifierOut], summary="All notifiers (operator)")
def list_notifiers(
    _operator: Principal = Depends(require_role(Role.OPERATOR)), services: Services = Depends(get_services)
) -> list[NotifierOut]:
    return [NotifierOut.of(view) for view in services.notifiers.list()]


@router.post(
    "/notifiers", response_model=NotifierOut, status_code=201, summary="Create a notifier (operator)"
)
def create_notifier(
    body: NotifierIn,
    request: Request,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> NotifierOut:
    """Unknown kind, invalid URL, address or apprise URL, or an internal target (an IP literal or
    `localhost` not listed in `notify_allowed_hosts`): 422. A name in use: 409."""
    view = services.notifiers.create(operator, body.name, body.kind, body.config, ip=client_ip(request))
    return NotifierOut.of(view)


@router.get("/notifiers/{notifier_id}", response_model=NotifierOut, summary="One notifier (operator)")
def get_notifier(
    notifier_id: int = NotifierId,
    _operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> NotifierOut:
    return NotifierOut.of(services.notifiers.get(notifier_id))


@router.patch("/notifiers/{notifier_id}", response_model=NotifierOut, summary="Change a notifier (operator)")
def update_notifier(
    body: NotifierPatchIn,
    request: Request,
    notifier_id: int = NotifierId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> NotifierOut:
    view = services.notifiers.update(
        operator, notifier_id, name=body.name, kind=body.kind, config=body.config, ip=client_ip(request)
    )
    return NotifierOut.of(view)


@router.delete("/notifiers/{notifier_id}", status_code=204, summary="Delete a notifier (operator)")
def delete_notifier(
    request: Request,
    notifier_id: int = NotifierId,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> Response:
    """Its delivery log goes with it."""
    services.notifiers.delete(operator, notifier_id, ip=client_ip(request))
    return Response(status_code=204)


@router.post(
    "/notifiers/{notifier_id}/test",
    response_model=DeliveryOut,
    summary="Send a test message (operator)",
    responses={202: {"model": DeliveryOut, "description": "still pending after `wait` seconds"}},
)
def test_notifier(
    request: Request,
    response: Response,
    notifier_id: int = NotifierId,
    wait: float = Query(15.0, ge=0, le=30, description="seconds to wait for the outcome"),
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> DeliveryOut:
    """Sends one test message (one attempt, no retries) and waits for its outcome: 200 with `status`
    `sent` or `failed` (and the error), or 202 with `status` `pending` when it takes longer than `wait`;
    follow it at `GET /deliveries/{id}`."""
    queued = services.notifiers.send_test(operator, notifier_id, ip=client_ip(request))
    view = services.notifiers.wait_for_delivery(queued.id, wait) if wait > 0 else queued
    if view.status == PENDING:
        response.status_code = 202
    return DeliveryOut.of(view)


@router.get(
    "/notifiers/{notifier_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="A notifier's delivery log, newest first (operator)",
)
def notifier_deliveries(
    notifier_id: int = NotifierId,
    limit: int = Query(100, ge=1, le=1000),
    _operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> list[DeliveryOut]:
    services.notifiers.get(notifier_id)
    return [DeliveryOut.of(v) for v in services.notifiers.recent_deliveries(limit, notifier_id=notifier_id)]


@router.get(
    "/deliveries", response_model=list[DeliveryOut], summary="The delivery log, newest first (operator)"
)
def deliveries(
    alert_id: int | None = Query(None, ge=1, le=2**63 - 1, description="only this alert's deliveries"),
    notifier_id: int | None = Query(None, ge=1, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=1000),
    _operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> list[DeliveryOut]:
    views = services.notifiers.recent_deliveries(limit, notifier_id=notifier_id, alert_id=alert_id)
    return [DeliveryOut.of(view) for view in views]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut, summary="One delivery (operator)")
def delivery(
    delivery_id: int = Path(ge=1, le=2**63 - 1),
    _operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> DeliveryOut:
    return DeliveryOut.of(services.notifiers.delivery(delivery_id))
