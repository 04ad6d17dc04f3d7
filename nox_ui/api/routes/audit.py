from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.api.params import UtcDateTime, parse_time
from nox_ui.app import Services
from nox_ui.models import AuditEvent
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import MAX_LIMIT

router = APIRouter(tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    ts: datetime
    actor_id: int | None
    actor_name: str
    actor_role: str
    source_ip: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        assert event.id is not None
        try:
            details = json.loads(event.details)
        except ValueError:
            details = {"unparsed": event.details}
        return cls(
            id=event.id,
            ts=event.ts,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            actor_role=event.actor_role,
            source_ip=event.source_ip,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            target_label=event.target_label,
            outcome=event.outcome,
            details=details if isinstance(details, dict) else {"value": details},
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


class AuditPageOut(BaseModel):
    total: int
    limit: int
    offset: int
    events: list[AuditEventOut]


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_bad: int | None
    reason: str = Field(description="what is wrong, in one line (empty when ok)")


@router.get("/audit", response_model=AuditPageOut, summary="Audit events, newest first (admin)")
def list_events(
    actor: str | None = Query(default=None, max_length=64, description="username (or `system`)"),
    action: str | None = Query(default=None, max_length=64, description="an action or a dotted prefix"),
    outcome: str | None = Query(default=None, description="success, failure or denied"),
    since: str | None = Query(default=None, description="Unix seconds or ISO 8601"),
    until: str | None = Query(default=None, description="Unix seconds or ISO 8601"),
    q: str | None = Query(
        default=None, max_length=200, description="free text over actor, action, target, details"
    ),
    limit: int = Query(default=100, ge=1, le=MAX_LIMIT),
    offset: int = Query(default=0, ge=0, le=2**63 - 1),
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> AuditPageOut:
    page = services.audit.query(
        requester=admin,
        actor=actor,
        action=action,
        outcome=outcome,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        q=q,
        limit=limit,
        offset=offset,
    )
    return AuditPageOut(
        total=page.total, limit=limit, offset=offset, events=[AuditEventOut.of(e) for e in page.events]
    )


@router.get(
    "/audit/verify",
    response_model=VerifyOut,
    summary="Recompute the hash chain and check it against the anchored head (admin)",
)
async def verify(
    admin: Principal = Depends(require_role(Role.ADMIN)), services: Services = Depends(get_services)
) -> VerifyOut:
    result = await run_in_threadpool(services.audit.verify, requester=admin)
    return VerifyOut(ok=result.ok, checked=result.checked, first_bad=result.first_bad, reason=result.reason)


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: UtcDateTime = Field(
        description="archive every event older than this (ISO 8601; no zone means UTC)"
    )


class ArchiveOut(BaseModel):
    archived: int
    file: str | None


@router.post(
    "/audit/archive",
    response_model=ArchiveOut,
    summary="Move old events to a file in DATA_DIR/backups, leaving a checkpoint (admin)",
)
async def archive(
    body: ArchiveIn,
    request: Request,
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> ArchiveOut:
    done = await run_in_threadpool(
        services.audit.archive,
        admin,
        body.before,
        services.config.data_dir / "backups",
        ip=client_ip(request),
    )
    return ArchiveOut(archived=done.count, file=done.path.name if done.path else None)
