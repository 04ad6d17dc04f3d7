from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from nox_ui.api.deps import get_services, require_role
from nox_ui.api.params import parse_time
from nox_ui.app import Services
from nox_ui.roles import Principal, Role

router = APIRouter(tags=["metrics"])


class CurrentOut(BaseModel):
    ts: float
    sample_duration_ms: float
    degraded: dict[str, str]
    values: dict[str, float]


class NameOut(BaseModel):
    name: str
    unit: str
    description: str
    labels: list[str]
    series: list[str]


class HistoryOut(BaseModel):
    metric: str
    tier: str
    step: int
    since: float
    until: float
    points: list[tuple[int, float, float, float]]


@router.get(
    "/metrics/current",
    response_class=Response,
    responses={200: {"model": CurrentOut, "content": {"application/json": {}}}},
    summary="The latest sample of every series",
)
async def current(
    _viewer: Principal = Depends(require_role(Role.VIEWER)), services: Services = Depends(get_services)
) -> Response:
    # Serialised once per sample for every caller (see MetricsService.current_json).
    return Response(services.metrics.current_json(), media_type="application/json")


@router.get("/metrics/names", response_model=list[NameOut], summary="Every metric with its unit and series")
def names(
    _viewer: Principal = Depends(require_role(Role.VIEWER)), services: Services = Depends(get_services)
) -> list[NameOut]:
    return [
        NameOut(name=i.name, unit=i.unit, description=i.description, labels=list(i.labels), series=i.series)
        for i in services.metrics.names()
    ]


@router.get("/metrics/history", response_model=HistoryOut, summary="avg/min/max points of one series")
def history(
    metric: str = Query(description='series id, e.g. cpu.percent or disk.used_percent{mount="/"}'),
    since: str | None = Query(default=None, description="Unix seconds or ISO 8601; default: until - 1 h"),
    until: str | None = Query(default=None, description="Unix seconds or ISO 8601; default: now"),
    step: int | None = Query(default=None, description="seconds per point; default: chosen by the range"),
    _viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> HistoryOut:
    end = parse_time(until, "until")
    end = time.time() if end is None else end
    start = parse_time(since, "since")
    start = end - 3600 if start is None else start
    result = services.metrics.query(metric, start, end, step)
    return HistoryOut(
        metric=result.metric, tier=result.tier, step=result.step, since=start, until=end, points=result.points
    )
