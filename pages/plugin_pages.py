"""`/plugins/<name>/...`: every plugin page, behind the same guard and inside the same frame as the
panel's own screens. A plugin declares a page's role; it never writes a guard.

One route serves them all and asks the plugin host for the page on each request, so a plugin enabled
or disabled a moment ago is answered as it is now: unknown or disabled → 404, a role too low → the
audited 403 page, a page that raises → a message here, the plugin marked failed (its traceback goes
to /admin/plugins) and withdrawn.
"""

from __future__ import annotations

from nicegui import ui

from nox_ui.app import Services
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard
from nox_ui.components.signals import ui_event
from nox_ui.errors import Forbidden
from nox_ui.plugins.spec import PluginUser
from nox_ui.roles import Principal, Role


def register(services: Services, guard: SessionGuard) -> None:
    plugins = services.plugins

    async def show(principal: Principal, plugin: str, rest: str) -> None:
        client = ui.context.client
        page = plugins.page(plugin, "/" + rest)
        if page is None:
            client.status_code = 404
            with (
                frame(guard, principal, "Not found"),
                ui.column().classes("items-center w-full q-pa-xl gap-2"),
            ):
                ui.icon("search_off", size="3rem").classes("nox-muted")
                ui.label("404 · No such page").classes("text-h5")
                ui.label(f"No enabled plugin offers /plugins/{plugin}/{rest}.").classes("nox-muted")
                ui.link("Back to the dashboard", "/")
            return
        role = Role(page.role)
        try:
            await guard.check_page(principal, role)
        except Forbidden as exc:
            client.status_code = 403
            guard.forbidden_page(guard, principal, exc.message)
            return
        with frame(guard, principal, page.title or plugin):
            try:
                result = page.build(PluginUser.of(principal))
                if hasattr(result, "__await__"):
                    await result
            except (Exception, SystemExit) as exc:  # the plugin's bug: it is withdrawn (and logged)
                plugins.report_failure(plugin, f"page /{rest}", exc)
                client.status_code = 503
                ui.label(
                    f"The plugin {plugin!r} failed while drawing this page and has been switched off. "
                    "An admin can see why on the Plugins screen."
                ).classes("text-negative").mark("plugin-page-failed")
                return

        def withdrawn(changed: str) -> None:
            # Disabled or failed while this page is open: its timers and handlers must stop calling it.
            if changed != plugin:
                return
            now = plugins.page(plugin, "/" + rest)
            if now is None:
                ui.navigate.to("/")
            elif now is not page:  # enabled again meanwhile: draw the page as it is now
                ui.navigate.reload()

        ui_event(plugins.changed).subscribe(withdrawn)

    @guard.page("/plugins/{plugin}", title="Plugin")
    async def plugin_root(principal: Principal, plugin: str) -> None:
        await show(principal, plugin, "")

    @guard.page("/plugins/{plugin}/{rest:path}", title="Plugin")
    async def plugin_page(principal: Principal, plugin: str, rest: str) -> None:
        await show(principal, plugin, rest)
