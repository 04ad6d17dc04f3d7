"""Profile: the account, change own password, own browser sessions, personal API tokens.

Thin on purpose: the rules (scopes a role may grant, expiry limits, what a password change ends, the
audit trail) live in `AuthService` and `UserService`; each action re-checks with `await guard.allow` first."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from nicegui import events, run, ui

from nox_ui.app import Services
from nox_ui.components.forms import ConfirmDialog, error_banner, password_input, text_input
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.theme import card
from nox_ui.errors import NoxError
from nox_ui.models import LoginSession, utcnow
from nox_ui.roles import Principal, Role
from nox_ui.services.auth import MAX_TOKEN_NAME, ROLE_SCOPES, TokenInfo

SCOPE_HELP = {
    "read": "read: view metrics, processes and everything a viewer sees",
    "write": "write: operator actions such as signalling processes",
    "admin": "admin: users, audit log and everything an admin does",
    "metrics:read": "metrics:read: scrape /metrics (Prometheus) and nothing else",
}
EXPIRY_OPTIONS = {"30": "30 days", "90": "90 days", "365": "1 year", "never": "Never"}

SESSION_COLUMNS: list[dict[str, Any]] = [
    {"name": "browser", "label": "Browser", "field": "browser", "align": "left"},
    {"name": "ip", "label": "Address", "field": "ip", "align": "left"},
    {"name": "created", "label": "Signed in (UTC)", "field": "created", "align": "left"},
    {"name": "last_seen", "label": "Last seen (UTC)", "field": "last_seen", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
TOKEN_COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "scopes", "label": "Scopes", "field": "scopes", "align": "left"},
    {"name": "created", "label": "Created (UTC)", "field": "created", "align": "left"},
    {"name": "expires", "label": "Expires (UTC)", "field": "expires", "align": "left"},
    {"name": "last_used", "label": "Last used (UTC)", "field": "last_used", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]


def _emit(action: str) -> str:
    return f"@click=\"() => $parent.$emit('row-action', {{action: '{action}', id: props.row.id}})\""


_BROWSER_SLOT = (
    '<q-td key="browser" :props="props">{{ props.row.browser }}'
    '<q-badge v-if="props.row.current" color="primary" label="this browser" class="q-ml-sm" /></q-td>'
)
_SESSION_ACTIONS_SLOT = (
    '<q-td key="actions" :props="props" auto-width>'
    '<q-btn v-if="!props.row.current" flat dense no-caps size="sm" color="negative" icon="logout" '
    f'label="End" aria-label="End this session" {_emit("end")} /></q-td>'
)
_TOKEN_NAME_SLOT = (
    '<q-td key="name" :props="props">{{ props.row.name }}'
    '<q-badge v-if="props.row.kind !== \'personal\'" color="grey" :label="props.row.kind" class="q-ml-sm">'
    "<q-tooltip>A one-hour token from POST /api/v1/auth/token</q-tooltip></q-badge></q-td>"
)
_TOKEN_STATUS_SLOT = (
    '<q-td key="status" :props="props">'
    "<q-badge :color=\"props.row.status === 'active' ? 'positive' : 'grey'\" :label=\"props.row.status\" />"
    "</q-td>"
)
_TOKEN_ACTIONS_SLOT = (
    '<q-td key="actions" :props="props" auto-width>'
    '<q-btn flat dense no-caps size="sm" color="negative" icon="key_off" label="Revoke" '
    f'aria-label="Revoke this token" {_emit("revoke")} /></q-td>'
)

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"))
_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def short_user_agent(user_agent: str) -> str:
    """'Firefox on Linux', 'Chrome on Android', 'curl'... from a User-Agent header; '-' when empty."""
    if not user_agent.strip():
        return "-"
    browser = next((name for key, name in _BROWSERS if key in user_agent), None)
    if browser is None and "Safari/" in user_agent:
        browser = "Safari"
    system = next((name for key, name in _SYSTEMS if key in user_agent), None)
    if browser is None:
        # not a known browser (a script, a test client): its first product token
        match = re.match(r"[\w.-]+", user_agent)
        return match.group(0)[:40] if match else user_agent[:40]
    return f"{browser} on {system}" if system else browser


def when(moment: datetime | None, empty: str = "never") -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else empty


def session_row(login: LoginSession, current_id: int | None) -> dict[str, Any]:
    return {
        "id": login.id,
        "browser": short_user_agent(login.user_agent),
        "ip": login.ip or "-",
        "created": when(login.created_at),
        "last_seen": when(login.last_seen_at),
        "current": login.id == current_id,
    }


def token_row(token: TokenInfo) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "kind": token.kind,
        "scopes": ", ".join(token.scopes),
        "created": when(token.created_at),
        "expires": when(token.expires_at),
        "last_used": when(token.last_used_at),
        "status": token.status,
    }


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page("/profile", title="Profile")
    async def profile(principal: Principal) -> None:
        user = await run.io_bound(services.users.get, principal.user_id)
        if user is None:  # the app is shutting down
            return
        current_session = principal.credential_id if principal.via == "session" else None
        grantable = [scope for scope in SCOPE_HELP if scope in ROLE_SCOPES[principal.role]]
        ip = client_ip()

        async def refresh() -> None:
            logins = await run.io_bound(services.auth.list_sessions, principal.user_id)
            tokens = await run.io_bound(services.auth.list_tokens, principal.user_id)
            sessions_table.rows = [session_row(login, current_session) for login in logins or []]
            tokens_table.rows = [token_row(token) for token in tokens or []]

        async def act(work: Callable[[Principal], Any], success: str) -> Any:
            return await guard.act(Role.VIEWER, work, success, then=refresh)

        # -- change password ------------------------------------------------------------------------

        async def change_password() -> None:
            error.text = ""
            actor = await guard.allow(Role.VIEWER)
            if actor is None:
                return
            if (new.value or "") != (confirm.value or ""):
                error.text = "The two new passwords differ."
                return
            try:
                await run.io_bound(
                    lambda: services.auth.verify_current_password(actor, current.value or "", ip=ip)
                )
            except NoxError as exc:
                error.text = exc.message
                return
            keep = actor.credential_id if actor.via == "session" else None
            password = new.value or ""
            try:
                await run.io_bound(
                    lambda: services.users.set_password(
                        actor, actor.username, password, ip=ip, keep_session_id=keep
                    )
                )
            except NoxError as exc:
                error.text = exc.message
                return
            for field in (current, new, confirm):
                field.value = ""
            ui.notify("Password changed. Your other sessions are signed out.", type="positive")
            await refresh()

        # -- the confirmation dialog, shared by every destructive action -------------------------------
        ask = ConfirmDialog("confirm-action").ask

        # -- sessions ---------------------------------------------------------------------------------

        def end_others() -> None:
            keep = current_session
            ask(
                "End all other sessions?",
                "Every other browser signed in as you is signed out at once. This one stays.",
                "End sessions",
                lambda: act(
                    lambda actor: services.auth.end_other_sessions(actor, keep, ip=ip),
                    "Other sessions ended.",
                ),
            )

        async def on_session_action(e: events.GenericEventArguments) -> None:
            args = e.args if isinstance(e.args, dict) else {}
            session_id = int(args.get("id") or 0)
            target = next((r for r in sessions_table.rows if r["id"] == session_id), None)
            if target is None or args.get("action") != "end" or await guard.allow(Role.VIEWER) is None:
                return
            ask(
                "End this session?",
                f"{target['browser']} from {target['ip']} is signed out at once.",
                "End session",
                lambda: act(
                    lambda actor: services.auth.end_own_session(actor, session_id, ip=ip),
                    "Session ended.",
                ),
            )

        # -- tokens -----------------------------------------------------------------------------------

        with (
            ui.dialog().props("persistent") as created_dialog,
            card().classes("q-pa-md gap-3 w-full max-w-lg"),
        ):
            ui.label("Your new token").classes("text-h6")
            with ui.row().classes("items-center gap-2 no-wrap text-orange-10"):
                ui.icon("warning")
                ui.label("Copy it now: it is shown this once and cannot be shown again.").classes(
                    "text-body2"
                )
            secret = (
                ui.input("Token").props("outlined readonly").classes("w-full nox-mono").mark("token-secret")
            )
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(
                    "Copy", icon="content_copy", on_click=lambda: copy_secret(secret.value or "")
                ).props("flat").mark("copy-token")

                def forget_secret() -> None:
                    secret.value = ""  # not kept in the page once the dialog is gone
                    created_dialog.close()

                ui.button("Done", on_click=forget_secret).props("unelevated color=primary").mark("token-done")

        def copy_secret(value: str) -> None:
            ui.clipboard.write(value)
            ui.notify("Token copied.", type="positive")

        with ui.dialog() as token_dialog, card().classes("q-pa-md gap-2 w-full max-w-md"):
            ui.label("New API token").classes("text-h6")
            token_name = (
                text_input("Name", autofocus=True).props(f"maxlength={MAX_TOKEN_NAME}").mark("token-name")
            )
            ui.label("Scopes").classes("text-body2 text-weight-medium q-mt-sm")
            scope_boxes = {
                scope: ui.checkbox(SCOPE_HELP[scope], value=scope == "read").mark(f"token-scope-{scope}")
                for scope in grantable
            }
            ui.label(f"Your role ({principal.role.value}) can grant the scopes listed here.").classes(
                "text-caption nox-muted"
            )
            token_expiry = (
                ui.select(EXPIRY_OPTIONS, value="90", label="Expires after")
                .props("outlined")
                .classes("w-full")
                .mark("token-expiry")
            )
            token_error = error_banner().mark("token-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=token_dialog.close).props("flat")

                async def create_token() -> None:
                    token_error.text = ""
                    actor = await guard.allow(Role.VIEWER)
                    if actor is None:
                        return
                    name = token_name.value or ""
                    scopes = [scope for scope, box in scope_boxes.items() if box.value]
                    days = token_expiry.value
                    expires_at = None if days == "never" else utcnow() + timedelta(days=int(days or 90))
                    try:
                        issued = await run.io_bound(
                            lambda: services.auth.create_personal_token(
                                actor, name, scopes, expires_at=expires_at, ip=ip
                            )
                        )
                    except NoxError as exc:
                        token_error.text = exc.message
                        return
                    if issued is None:  # the server is shutting down
                        return
                    token_dialog.close()
                    secret.value = issued.token
                    created_dialog.open()
                    await refresh()

                ui.button("Create", on_click=create_token).props("unelevated color=primary").mark(
                    "create-token"
                )

        def open_new_token() -> None:
            token_name.value = ""
            for scope, box in scope_boxes.items():
                box.value = scope == "read"
            token_expiry.value = "90"
            token_error.text = ""
            token_dialog.open()

        async def on_token_action(e: events.GenericEventArguments) -> None:
            args = e.args if isinstance(e.args, dict) else {}
            token_id = int(args.get("id") or 0)
            target = next((r for r in tokens_table.rows if r["id"] == token_id), None)
            if target is None or args.get("action") != "revoke" or await guard.allow(Role.VIEWER) is None:
                return
            ask(
                f"Revoke {target['name']}?",
                "Scripts using this token are refused from now on. This cannot be undone.",
                "Revoke",
                lambda: act(
                    lambda actor: services.auth.revoke_own_token(actor, token_id, ip=ip),
                    f"Token {target['name']} revoked.",
                ),
            )

        # -- the page ---------------------------------------------------------------------------------
        with frame(guard, principal, "Profile"):
            ui.label("Profile").classes("text-h5")
            with ui.row().classes("w-full gap-4 items-start"):
                with card().classes("q-pa-md min-w-[280px]"):
                    ui.label("Account").classes("text-subtitle1 text-weight-medium")
                    with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-body2"):
                        for name, value in (
                            ("Username", user.username),
                            ("Role", user.role),
                            ("Display name", user.display_name or "-"),
                            ("Email", user.email or "-"),
                            (
                                "Last sign-in",
                                user.last_login_at.strftime("%Y-%m-%d %H:%M UTC")
                                if user.last_login_at
                                else "-",
                            ),
                        ):
                            ui.label(name).classes("nox-muted")
                            ui.label(value)
                with card().classes("q-pa-md w-full max-w-md gap-2"):
                    ui.label("Change password").classes("text-subtitle1 text-weight-medium")
                    ui.label(
                        "Changing it signs out your other sessions and ends your password sign-in tokens; "
                        "this browser stays signed in and your personal API tokens keep working."
                    ).classes("text-caption nox-muted")
                    current = password_input("Current password").mark("current")
                    new = password_input("New password", autocomplete="new-password").mark("new")
                    confirm = password_input("Confirm new password", autocomplete="new-password").mark(
                        "confirm"
                    )
                    error = error_banner()
                    ui.button("Change password", on_click=change_password).mark("change-password").props(
                        "unelevated color=primary"
                    )

            with card().classes("w-full q-pa-md gap-2"):
                with ui.row().classes("w-full items-center gap-3"):
                    ui.label("Sessions").classes("text-subtitle1 text-weight-medium")
                    ui.space()
                    ui.button("End all other sessions", icon="logout", on_click=end_others).props(
                        "flat no-caps color=negative"
                    ).mark("end-other-sessions")
                sessions_table = (
                    ui.table(columns=SESSION_COLUMNS, rows=[], row_key="id")
                    .props("flat dense")
                    .classes("w-full")
                    .mark("sessions-table")
                )
                sessions_table.add_slot("body-cell-browser", _BROWSER_SLOT)
                sessions_table.add_slot("body-cell-actions", _SESSION_ACTIONS_SLOT)
                sessions_table.on("row-action", on_session_action)

            with card().classes("w-full q-pa-md gap-2"):
                with ui.row().classes("w-full items-center gap-3"):
                    ui.label("API tokens").classes("text-subtitle1 text-weight-medium")
                    ui.space()
                    ui.button("New token", icon="add", on_click=open_new_token).props(
                        "unelevated no-caps color=primary"
                    ).mark("new-token")
                ui.label(
                    "Send one as the header 'Authorization: Bearer <token>' to /api/v1. Only a hash is stored, "
                    "so a lost token cannot be shown again: revoke it and create another."
                ).classes("text-caption nox-muted")
                tokens_table = (
                    ui.table(columns=TOKEN_COLUMNS, rows=[], row_key="id")
                    .props("flat dense no-data-label='No tokens yet'")
                    .classes("w-full")
                    .mark("tokens-table")
                )
                tokens_table.add_slot("body-cell-name", _TOKEN_NAME_SLOT)
                tokens_table.add_slot("body-cell-status", _TOKEN_STATUS_SLOT)
                tokens_table.add_slot("body-cell-actions", _TOKEN_ACTIONS_SLOT)
                tokens_table.on("row-action", on_token_action)

        await refresh()
