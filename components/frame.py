"""The app frame: header (product, connection indicator, theme toggle, user menu) and the nav drawer.

The drawer lists the nav items registered through the `nav_items` hook: the panel's own (a default
plugin, `nox_ui/plugins/builtin.py`) and every enabled plugin's, for the viewer's role. It is redrawn
when a plugin is enabled, disabled or fails, so open pages gain or lose entries at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import app, ui

from nox_ui.alerts.evaluation import AlertCounts
from nox_ui.components.health_banner import health_banner
from nox_ui.components.reconnect_banner import connection_indicator, reconnect_banner
from nox_ui.components.search_box import search_box
from nox_ui.components.session import SIGN_OUT_FORM, SessionGuard
from nox_ui.components.signals import ui_event
from nox_ui.components.theme import apply_theme
from nox_ui.roles import Principal

ALERTS_PATH = "/alerts"


def _firing_badge(guard: SessionGuard) -> None:
    """The number of firing, unacknowledged alerts, updated live from the engine's `changed` event."""
    engine = guard.services.alerts.engine
    badge = ui.badge("", color="negative").props("rounded").mark("firing-badge")

    def show(unacknowledged: int) -> None:
        badge.text = str(unacknowledged)
        badge.set_visibility(unacknowledged > 0)
        badge.props(f'aria-label="{unacknowledged} firing alerts not acknowledged"')

    show(engine.counts().unacknowledged)
    event = ui_event(engine.changed)

    def on_counts(counts: AlertCounts) -> None:
        if badge.is_deleted:  # the menu was redrawn (a plugin came or went): this badge is gone
            event.unsubscribe(on_counts)
            return
        show(counts.unacknowledged)

    event.subscribe(on_counts)


@contextmanager
def frame(guard: SessionGuard, principal: Principal, title: str) -> Iterator[None]:
    apply_theme()
    request = ui.context.client.request
    current_path = request.url.path if request is not None else ui.context.client.page.path
    site_name = guard.services.settings.current.site_name
    ui.page_title(f"{title} · {site_name}")
    dark = ui.dark_mode(app.storage.user.get("dark"))
    drawer: ui.left_drawer  # made below; the header's buttons refer to them
    theme_button: ui.button

    with ui.header().classes("nox-header items-center q-px-md q-py-sm gap-3"):
        ui.button(icon="menu", on_click=lambda: drawer.toggle()).props(
            "flat round dense color=white aria-label=Menu"
        )
        with ui.link(target="/").classes("row items-center gap-2 no-underline text-white"):
            ui.icon("dns", size="sm")
            ui.label(site_name).classes("text-subtitle1 text-weight-bold").mark("site-name")
        ui.label(title).classes("text-subtitle2 opacity-80 gt-xs")
        ui.space()
        search_box(guard)
        connection_indicator()

        def toggle_dark() -> None:
            dark.value = not dark.value
            app.storage.user["dark"] = dark.value
            theme_button.props(f"icon={'light_mode' if dark.value else 'dark_mode'}")

        theme_button = ui.button(
            icon="light_mode" if dark.value else "dark_mode", on_click=toggle_dark
        ).props("flat round dense color=white aria-label='Toggle dark mode'")
        theme_button.tooltip("Dark / light")
        with (
            ui.button()
            .props("flat no-caps color=white aria-label='User menu'")
            .classes("q-px-sm")
            .mark("user-menu")
        ):
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.icon("account_circle")
                with ui.column().classes("gap-0 items-start gt-xs"):
                    ui.label(principal.label).classes("text-body2 leading-tight")
                    ui.label(principal.role.value).classes("text-caption opacity-80 leading-tight")
            with ui.menu().props("auto-close").classes("min-w-[160px]"):
                ui.menu_item("Profile", on_click=lambda: ui.navigate.to("/profile"))
                ui.separator()
                ui.menu_item("Sign out", on_click=guard.sign_out).mark("sign-out")
    # Sign-out is a POST with the session's CSRF token; the menu item submits this form.
    ui.html(
        f'<form id="{SIGN_OUT_FORM}" method="post" action="/logout" class="hidden">'
        f'<input type="hidden" name="csrf" value="{guard.sign_out_token()}"></form>',
        sanitize=False,
    ).mark("sign-out-form")

    with (
        ui.left_drawer(value=None)
        .props("width=220 breakpoint=800 bordered")
        .classes("nox-drawer q-pa-none") as drawer
    ):
        _nav_list(guard, principal, current_path)

    reconnect_banner()
    health_banner(guard.services.supervisor, principal)
    with ui.column().classes("w-full max-w-screen-xl mx-auto q-pa-md gap-4"):
        yield


def _nav_list(guard: SessionGuard, principal: Principal, current_path: str) -> None:
    plugins = guard.services.plugins

    @ui.refreshable
    def entries() -> None:
        with ui.list().props("padding").classes("w-full").mark("nav"):
            for item in plugins.nav_items(principal):
                active = item.path == current_path
                with (
                    ui.item(on_click=lambda path=item.path: ui.navigate.to(path))
                    .props(f"clickable {'active' if active else ''} active-class=nox-nav-active")
                    .classes("rounded-borders q-mx-sm")
                ):
                    with ui.item_section().props("avatar"):
                        ui.icon(item.icon)
                    ui.item_section(item.label)
                    if item.path == ALERTS_PATH:
                        with ui.item_section().props("side"):
                            _firing_badge(guard)

    entries()
    ui_event(plugins.changed).subscribe(lambda _name: entries.refresh())


def forbidden_page(guard: SessionGuard, principal: Principal, message: str) -> None:
    """The 403 page in the frame (the guard's `forbidden_page`)."""
    with frame(guard, principal, "Access denied"), ui.column().classes("items-center w-full q-pa-xl gap-2"):
        ui.icon("block", size="3rem").classes("text-negative")
        ui.label("403 · Access denied").classes("text-h5")
        ui.label(message).classes("nox-muted")
        ui.link("Back to the dashboard", "/")
