"""The public surface for plugin authors: import from here, and only from here.

    from nox_ui.plugin import hookimpl, Page, NavItem, Widget, Collector, MetricSpec

Everything a hook returns is one of these types; everything a plugin may ask of the panel is on the
`ctx` each hook receives (`PluginContext`). The rest of `nox_ui` is internal and changes between
releases. The hooks are documented in `nox_ui/plugins/hookspecs.py` and docs/plugins.md.
"""

from __future__ import annotations

from typing import Any

from nox_ui import __version__
from nox_ui.alerts.channels import DeliveryError
from nox_ui.alerts.kinds.base import FormField, NotifierKind, SendContext
from nox_ui.alerts.messages import AlertMessage
from nox_ui.errors import Conflict, Forbidden, Invalid, NotFound
from nox_ui.metrics.collectors import Collector
from nox_ui.metrics.series import MetricSpec, series_id
from nox_ui.plugins.context import PluginContext, PluginMetrics
from nox_ui.plugins.hookspecs import hookimpl
from nox_ui.plugins.spec import ApiRoutes, NavItem, Page, PluginUser, Widget
from nox_ui.roles import Role

PANEL_VERSION = __version__

__all__ = [
    "PANEL_VERSION",
    "AlertMessage",
    "ApiRoutes",
    "Collector",
    "Conflict",
    "DeliveryError",
    "Forbidden",
    "FormField",
    "Invalid",
    "MetricSpec",
    "NavItem",
    "NotFound",
    "NotifierKind",
    "Page",
    "PluginContext",
    "PluginMetrics",
    "PluginUser",
    "Role",
    "SendContext",
    "Widget",
    "hookimpl",
    "series_id",
]


def __getattr__(name: str) -> Any:
    # The API's dependencies import FastAPI: loaded only by a plugin that declares routes.
    if name in {"require_role", "api_user"}:
        from nox_ui.api.routes import plugins as api_plugins

        return getattr(api_plugins, name)
    raise AttributeError(name)
