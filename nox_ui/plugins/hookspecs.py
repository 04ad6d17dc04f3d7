"""The hooks a plugin may implement, each with an example. The panel calls them with `ctx`, the
plugin's own `PluginContext` (see `nox_ui/plugins/context.py`); an implementation may leave `ctx` out
of its signature when it does not need it (pluggy passes arguments by name).

Write an implementation with the `hookimpl` marker of `nox_ui.plugin`::

    from nox_ui.plugin import hookimpl, NavItem

    @hookimpl
    def nav_items(ctx):
        return [NavItem("UPS", "/plugins/ups/", icon="battery_charging_full")]

Every hook may return its value or an awaitable of it (an `async def` implementation). A hook is
called only while its plugin is enabled, once per enable (the panel keeps what it returned until the
plugin is disabled), in a worker thread or on the event loop for async ones, and for at most
`HOOK_TIMEOUT` seconds. A hook that raises, hangs or returns something of the wrong type marks its
plugin failed (the traceback is shown to admins on /admin/plugins); the panel and the other plugins
go on.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "nox_ui"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_pages(ctx: Any) -> Any:
    """Screens under /plugins/<name>/, in the panel's frame, behind sign-in and the role each declares.

    Return a list of `Page`::

        @hookimpl
        def register_pages(ctx):
            def build(user):
                ui.label(f"Battery at {ctx.metrics.value('ups.charge_percent'):.0f} %")
            return [Page("/", build, title="UPS", role="viewer")]
    """


@hookspec
def nav_items(ctx: Any) -> Any:
    """Entries in the menu drawer, shown to the roles they allow.

    Return a list of `NavItem`::

        @hookimpl
        def nav_items(ctx):
            return [NavItem("UPS", "/plugins/ups/", icon="battery_charging_full", role="viewer")]
    """


@hookspec
def dashboard_widgets(ctx: Any) -> Any:
    """Cards added to the dashboard (below the built-in ones).

    Return a list of `Widget`; `build(user)` draws the card's content with NiceGUI::

        @hookimpl
        def dashboard_widgets(ctx):
            def build(user):
                label = ui.label()
                ui.timer(1.0, lambda: label.set_text(f"{ctx.metrics.value('ups.charge_percent'):.0f} %"))
            return [Widget("UPS battery", build)]
    """


@hookspec
def metric_collectors(ctx: Any) -> Any:
    """Collectors whose series join the built-in ones: the same sampler (in a worker thread, bounded in
    time), history, alert rules and /metrics.

    Return a list of `Collector` instances; each owns its `MetricSpec`s and returns
    `{series_id: value}` from `collect(now)`::

        class UpsCollector(Collector):
            name = "ups"
            specs = (MetricSpec("ups.charge_percent", "percent", "UPS battery charge"),)

            def collect(self, now):
                return {"ups.charge_percent": read_ups()}

        @hookimpl
        def metric_collectors(ctx):
            return [UpsCollector()]
    """


@hookspec
def notifier_kinds(ctx: Any) -> Any:
    """Kinds of notifier added to the same registry as webhook, email and apprise: they appear in the
    notifier form and the API, and alerts are delivered through them with retries and a delivery log.

    Return a list of `NotifierKind` instances (a config model, form fields and an async `send`)::

        @hookimpl
        def notifier_kinds(ctx):
            return [ChatKind()]
    """


@hookspec
def settings_schema(ctx: Any) -> Any:
    """The plugin's own settings: a pydantic model whose fields all have defaults and descriptions.
    They appear on /admin/settings under the plugin's name, are validated like the built-in ones (a
    bad value is refused with a message naming it) and audited; `ctx.settings` is the current value::

        class UpsSettings(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True)
            low_battery_percent: int = Field(20, ge=1, le=99, description="Warn below this charge.")

        @hookimpl
        def settings_schema(ctx):
            return UpsSettings
    """


@hookspec
def search_documents(ctx: Any) -> Any:
    """Documents for the panel's search (the header's box, /search, `GET /api/v1/search`), indexed when
    the plugin is enabled and removed when it is disabled.

    Return a list of dicts with ``type`` (a lowercase name of your own, not one of the panel's types;
    it becomes a facet and a ``type:`` filter), ``id`` (unique within your type), ``title``, ``text``
    (what is searched and shown as the snippet), ``url`` (a panel path such as /plugins/<name>/...) and
    optionally ``role`` (the least role that may see it; viewer by default). At most 10,000::

        @hookimpl
        def search_documents(ctx):
            return [
                {"type": "ups", "id": "main", "title": "Main UPS", "text": "APC Smart-UPS 1500, rack 2",
                 "url": "/plugins/ups/", "role": "viewer"},
            ]
    """


@hookspec
def api_routes(ctx: Any) -> Any:
    """A FastAPI `APIRouter` mounted at /api/v1/plugins/<name>/, behind a bearer token of at least the
    role given (answering 404 while the plugin is disabled)::

        router = APIRouter()

        @router.get("/status")
        def status():
            return {"charge": 97}

        @hookimpl
        def api_routes(ctx):
            return ApiRoutes(router, role="viewer")
    """


@hookspec
def startup(ctx: Any) -> Any:
    """Called when the plugin is enabled (at the panel's start, or live by an admin). Open what the
    plugin needs; an exception marks the plugin failed.::

        @hookimpl
        async def startup(ctx):
            ctx.logger.info("UPS plugin ready")
    """


@hookspec
def shutdown(ctx: Any) -> Any:
    """Called when the plugin is disabled or the panel stops. Close what `startup` opened."""
