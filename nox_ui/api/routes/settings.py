"""Runtime settings (admin): read, describe, change all-or-nothing, export and import."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.roles import Principal, Role
from nox_ui.services.settings import InvalidSettings, SettingChange, check_import_size

router = APIRouter(prefix="/settings", tags=["settings"])
admin = require_role(Role.ADMIN)

_CHANGES_EXAMPLE = {"session_idle_minutes": 60, "smtp_host": "mail.example.org"}


class Change(BaseModel):
    key: str
    old: Any
    new: Any
    secret: bool


class ImportResult(BaseModel):
    dry_run: bool
    changes: list[Change]


def _invalid(exc: InvalidSettings) -> JSONResponse:
    """Field errors in the same shape as FastAPI's own 422s: one entry per offending key."""
    detail = [
        {"loc": ["body", key], "msg": msg, "type": "invalid_setting"} for key, msg in exc.errors.items()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _changes(diff: list[SettingChange]) -> list[Change]:
    return [Change(**change.as_dict()) for change in diff]


@router.get("", summary="Every runtime setting as {name: value}; secrets as null")
def get_settings(
    _principal: Principal = Depends(admin), services: Services = Depends(get_services)
) -> dict[str, Any]:
    return services.settings.public()


@router.get("/schema", summary="Type, default, group, description and limits of every setting")
def get_schema(
    _principal: Principal = Depends(admin), services: Services = Depends(get_services)
) -> dict[str, dict[str, Any]]:
    return services.settings.schema()


@router.patch(
    "",
    summary="Change settings: a flat {name: value} object, all or nothing (null resets to the default)",
    responses={422: {"description": "an unknown name or an invalid value; nothing was changed"}},
)
async def patch_settings(
    request: Request,
    changes: dict[str, Any] = Body(..., examples=[_CHANGES_EXAMPLE]),
    principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> Any:
    try:
        await run_in_threadpool(services.settings.update, principal, changes, ip=client_ip(request))
    except InvalidSettings as exc:
        return _invalid(exc)
    return services.settings.public()


@router.get("/export", summary="Every non-secret setting as an importable document")
def export_settings(
    _principal: Principal = Depends(admin), services: Services = Depends(get_services)
) -> dict[str, Any]:
    return services.settings.export()


@router.post(
    "/import",
    response_model=ImportResult,
    summary="Import an export document; with dry_run=true only the diff is returned",
    responses={
        413: {"description": "the document is larger than 256 KiB; nothing was changed"},
        422: {"description": "not an export, an unknown name or an invalid value; nothing was changed"},
    },
)
async def import_settings(
    request: Request,
    document: dict[str, Any] = Body(...),
    dry_run: bool = Query(False, description="show what would change without changing it"),
    principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> Any:
    check_import_size(len(await request.body()))  # the parsed body is cached: this reads nothing again
    try:
        diff = await run_in_threadpool(
            services.settings.import_, principal, document, dry_run=dry_run, ip=client_ip(request)
        )
    except InvalidSettings as exc:
        return _invalid(exc)
    return ImportResult(dry_run=dry_run, changes=_changes(diff))
