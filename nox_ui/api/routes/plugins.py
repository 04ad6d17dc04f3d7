"""Plugins (admin): list, enable and disable them live, read and change their settings. Also what plugin
routes use: `require_role` and `api_user` (re-exported by `nox_ui.plugin`), and `mount_plugin_routes`,
which puts an enabled plugin's router at /api/v1/plugins/<name>/ behind its role and a 404 while the
plugin is not enabled. The names `settings`, `enable` and `disable` under a plugin's prefix are the
panel's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from nox_ui.api.deps import client_ip, current_principal, get_services, require_role
from nox_ui.api.routes.settings import _invalid
from nox_ui.app import Services
from nox_ui.errors import NotFound
from nox_ui.plugins.host import PluginView
from nox_ui.plugins.spec import ApiRoutes, PluginUser
from nox_ui.roles import Principal, Role
from nox_ui.services.settings import InvalidSettings

router = APIRouter(prefix="/plugins", tags=["plugins"])
admin = require_role(Role.ADMIN)

__all__ = ["api_user", "mount_plugin_routes", "require_role", "router"]


class PluginOut(BaseModel):
    name: str
    version: str
    description: str
    author: str
    homepage: str
    panel: str  # the panel versions it supports ('' for any)
    source: str
    status: str  # enabled, disabled, failed, incompatible, refused
    enabled: bool  # the stored decision
    reason: str  # why it is refused, incompatible or failed
    traceback: str  # of its failure
    has_settings: bool
    pages: list[str]
    metrics: list[str]
    notifier_kinds: list[str]


def _out(view: PluginView) -> PluginOut:
    return PluginOut(
        **{
            key: list(value) if isinstance(value, tuple) else str(value) if key == "status" else value
            for key, value in vars(view).items()
        }
    )


@router.get("", summary="Every plugin found, with its state (a failed one with its traceback)")
async def list_plugins(
    refresh: bool = Query(False, description="look for plugins again (entry points and DATA_DIR/plugins)"),
    _principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> list[PluginOut]:
    views = await run_in_threadpool(lambda: services.plugins.views(refresh=refresh))
    return [_out(view) for view in views]


@router.get("/{name}", summary="One plugin")
async def get_plugin(
    name: str, _principal: Principal = Depends(admin), services: Services = Depends(get_services)
) -> PluginOut:
    return _out(await run_in_threadpool(services.plugins.view, name))


@router.post("/{name}/enable", summary="Enable a plugin now (its code runs in the panel); audited")
async def enable_plugin(
    name: str,
    request: Request,
    principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> PluginOut:
    return _out(await services.plugins.enable(principal, name, ip=client_ip(request)))


@router.post("/{name}/disable", summary="Disable a plugin now; audited")
async def disable_plugin(
    name: str,
    request: Request,
    principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> PluginOut:
    return _out(await services.plugins.disable(principal, name, ip=client_ip(request)))


def _schema(services: Services, name: str) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "type": info.type,
            "default": info.default,
            "group": info.group,
            "description": info.description,
            "secret": info.secret,
            **info.constraints,
        }
        for key, info in services.plugin_settings.info(name).items()
    }


@router.get("/{name}/settings", summary="An enabled plugin's settings: their schema and values")
def get_plugin_settings(
    name: str, _principal: Principal = Depends(admin), services: Services = Depends(get_services)
) -> dict[str, Any]:
    return {"schema": _schema(services, name), "values": services.plugin_settings.values(name)}


@router.patch(
    "/{name}/settings",
    summary="Change a plugin's settings: a flat {name: value} object, all or nothing (null resets)",
    responses={422: {"description": "an unknown name or an invalid value; nothing was changed"}},
)
async def patch_plugin_settings(
    name: str,
    request: Request,
    changes: dict[str, Any] = Body(..., examples=[{"title": "My wave"}]),
    principal: Principal = Depends(admin),
    services: Services = Depends(get_services),
) -> Any:
    try:
        await run_in_threadpool(
            services.plugin_settings.update, principal, name, changes, ip=client_ip(request)
        )
    except InvalidSettings as exc:
        return _invalid(exc)
    return {"schema": _schema(services, name), "values": services.plugin_settings.values(name)}


# -- what plugin routes stand on -------------------------------------------------------------------------


async def api_user(principal: Principal = Depends(current_principal)) -> PluginUser:
    """A plugin route's caller: `user: PluginUser = Depends(api_user)`."""
    return PluginUser.of(principal)


def mount_plugin_routes(api: FastAPI, services: Services) -> None:
    """Mount every enabled plugin's router now, and each one enabled later. A plugin enabled again
    replaces its earlier routes (the new router, the role it declares now); a disabled plugin's routes
    are taken out (404, as for one never installed), and a check on every request answers 404 should
    one be reached while the plugin is not active."""
    mounted: dict[str, list[Any]] = {}  # name: the entries its include added to api.router.routes

    def mount(name: str, routes: ApiRoutes | None) -> None:
        for old in mounted.pop(name, []):
            if old in api.router.routes:
                api.router.routes.remove(old)
        if routes is None:  # loaded again without routes
            api.openapi_schema = None
            return

        async def enabled(request: Request) -> None:
            if not services.plugins.is_active(name):
                raise NotFound(f"plugin {name!r} is not enabled")
            request.state.nox_plugin = name  # the API's error handler names the plugin if its route raises

        before = {id(route) for route in api.router.routes}
        api.include_router(
            routes.router,
            prefix=f"{router.prefix}/{name}",
            tags=[f"plugin: {name}"],
            dependencies=[Depends(require_role(Role(routes.role))), Depends(enabled)],
        )
        mounted[name] = [route for route in api.router.routes if id(route) not in before]
        api.openapi_schema = None  # the document is rebuilt with the new routes

    for name, routes in services.plugins.api_routes().items():
        mount(name, routes)
    services.plugins.api_mount = mount
