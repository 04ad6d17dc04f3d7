"""Plugins (admin): every plugin found, its status and why, enable and disable behind a confirmation,
a rescan of the plugins folder, and a failed plugin's traceback. Thin on purpose: discovery and the
decisions are `PluginCatalog`'s, loading and the status `PluginHost`'s; the list is redrawn whenever
the host says a plugin loaded, unloaded or failed (also for a change made with `nox-ui plugins`)."""

from __future__ import annotations

from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.forms import ConfirmDialog
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.signals import ui_event
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.plugins.host import PluginStatus, PluginView
from nox_ui.roles import Principal, Role

STATUS_COLORS = {
    PluginStatus.ENABLED: "positive",
    PluginStatus.DISABLED: "grey",
    PluginStatus.FAILED: "negative",
    PluginStatus.INCOMPATIBLE: "orange",
    PluginStatus.REFUSED: "orange",
}
EMPTY = (
    "No plugins found. Install one with pip (entry point group nox_ui.plugins) or drop a module into "
    "DATA_DIR/plugins; see docs/plugins.md."
)
ENABLE_TEXT = "Its code runs inside the panel with the panel's rights."
DISABLE_TEXT = "Its pages, menu entries, widgets, metrics and notifier kinds stop now."


def _safe_url(url: str) -> str:
    """A plugin's homepage as a link only when it is a web address (never javascript: and the like)."""
    return url if url.lower().startswith(("https://", "http://")) else ""


def _contributions(view: PluginView) -> str:
    parts = [
        f"{label}: {', '.join(items)}"
        for label, items in (
            ("Pages", view.pages),
            ("Metrics", view.metrics),
            ("Notifier kinds", view.notifier_kinds),
        )
        if items
    ]
    return " · ".join(parts)


def register(services: Services, guard: SessionGuard) -> None:
    plugins = services.plugins

    @guard.page("/admin/plugins", role=Role.ADMIN, title="Plugins")
    async def plugins_page(principal: Principal) -> None:
        client = ui.context.client
        ask = ConfirmDialog("plugin-confirm").ask

        async def refresh(rescan: bool = False) -> int:
            views = await run.io_bound(lambda: plugins.views(refresh=rescan))
            if views is None or client.is_deleted:  # None: the server is shutting down
                return 0
            listing.refresh(views)
            return len(views)

        async def rescan() -> None:
            if await guard.allow(Role.ADMIN) is None:
                return
            found = await refresh(rescan=True)
            ui.notify(f"Looked for plugins again: {found} found.", type="info")

        async def change(name: str, enable: bool) -> None:
            actor = await guard.allow(Role.ADMIN)
            if actor is None:
                return
            action = plugins.enable if enable else plugins.disable
            try:
                view = await action(actor, name, ip=client_ip())
            except NoxError as exc:
                ui.notify(exc.message, type="negative", multi_line=True)
            else:
                if view.status is PluginStatus.FAILED:
                    ui.notify(f"Plugin {name} failed: {view.reason}", type="negative", multi_line=True)
                else:
                    ui.notify(f"Plugin {name} {'enabled' if enable else 'disabled'}.", type="positive")
            await refresh()

        def ask_enable(name: str) -> None:
            ask(f"Enable plugin {name}?", ENABLE_TEXT, "Enable", lambda: change(name, True))

        def ask_disable(name: str) -> None:
            ask(f"Disable {name}?", DISABLE_TEXT, "Disable", lambda: change(name, False))

        def actions(view: PluginView) -> None:
            name = view.name
            if view.has_settings:
                ui.link("Settings", f"/admin/settings#plugin-{name}").classes("text-body2").mark(
                    f"plugin-settings-{name}"
                )
            if view.status in {PluginStatus.INCOMPATIBLE, PluginStatus.REFUSED}:
                with ui.element("span"):  # a disabled button shows no tooltip of its own
                    ui.button("Enable", icon="play_arrow").props("flat").mark(
                        f"plugin-enable-{name}"
                    ).disable()
                    ui.tooltip(view.reason)
            elif view.status in {PluginStatus.DISABLED, PluginStatus.FAILED}:
                label = "Enable again" if view.status is PluginStatus.FAILED else "Enable"
                ui.button(label, icon="play_arrow", on_click=lambda: ask_enable(name)).props(
                    "unelevated color=primary"
                ).mark(f"plugin-enable-{name}")
            if view.enabled or view.status is PluginStatus.ENABLED:
                ui.button("Disable", icon="stop", on_click=lambda: ask_disable(name)).props("flat").mark(
                    f"plugin-disable-{name}"
                )

        def plugin_card(view: PluginView) -> None:
            name = view.name
            with card().classes("w-full q-pa-md gap-1").mark(f"plugin-{name}"):
                with ui.row().classes("w-full items-center gap-2"):
                    ui.icon("extension").classes("nox-muted")
                    ui.label(name).classes("text-subtitle1 text-weight-medium")
                    ui.label(view.version).classes("text-caption nox-muted font-mono")
                    ui.badge(view.status.value, color=STATUS_COLORS[view.status]).props(
                        f'aria-label="status {view.status.value}"'
                    ).mark(f"plugin-status-{name}")
                    ui.space()
                    actions(view)
                if view.description:
                    ui.label(view.description).classes("text-body2")
                with ui.row().classes("items-center gap-3 text-caption nox-muted"):
                    if view.author:
                        ui.label(f"by {view.author}")
                    homepage = _safe_url(view.homepage)
                    if homepage:
                        ui.link(homepage, homepage, new_tab=True).props('rel="noopener noreferrer"')
                    if view.panel:
                        ui.label(f"supports Nox UI {view.panel}")
                ui.label(view.source).classes("text-caption nox-muted font-mono break-all")
                contributed = _contributions(view)
                if contributed:
                    ui.label(contributed).classes("text-caption nox-muted")
                if view.reason:
                    color = "text-negative" if view.status is PluginStatus.FAILED else "text-orange-9"
                    ui.label(view.reason).classes(f"text-body2 {color}").mark(f"plugin-reason-{name}")
                if view.status is PluginStatus.FAILED and view.traceback:
                    with (
                        ui.expansion("Error details", icon="bug_report")
                        .classes("w-full")
                        .mark(f"plugin-error-{name}")
                    ):
                        ui.label(view.traceback).classes(
                            "font-mono text-caption whitespace-pre overflow-auto w-full q-pa-sm rounded-borders"
                        ).style("background: rgba(148, 163, 184, .15)").mark(f"plugin-traceback-{name}")

        @ui.refreshable
        def listing(views: list[PluginView]) -> None:
            if not views:
                ui.label(EMPTY).classes("text-body2 nox-muted").mark("plugins-empty")
                return
            for view in views:
                plugin_card(view)

        first = await run.io_bound(plugins.views)
        with frame(guard, principal, "Plugins"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Plugins").classes("text-h5")
                ui.space()
                ui.button("Rescan", icon="refresh", on_click=rescan).props("flat").mark("plugins-rescan")
            ui.label(
                "A plugin runs inside the panel with its rights: enable only those you trust. Enabling "
                "and disabling take effect at once and are recorded in the audit log; a change made "
                "with the nox-ui plugins command reaches the panel within a few seconds."
            ).classes("text-body2 nox-muted")
            with ui.column().classes("w-full gap-3").mark("plugins-list"):
                listing(first or [])
            ui_event(plugins.changed).subscribe(lambda _name: refresh())
