"""Settings (admin): every runtime setting, grouped, validated in place; a diff before saving;
export and import as JSON with a dry-run diff. The inputs, groups and rules all come from the
registry (`nox_ui/runtime_settings.py`) through `SettingsService`; nothing about a setting is
written here. Below them, one section per enabled plugin with settings (`PluginSettings`, the same
registry read from the plugin's model), anchored at #plugin-<name>, saved on its own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nicegui import events, run, ui
from nicegui.elements.mixins.value_element import ValueElement

from nox_ui.app import Services
from nox_ui.components.frame import frame
from nox_ui.components.session import SessionGuard, client_ip
from nox_ui.components.signals import ui_event
from nox_ui.components.theme import card
from nox_ui.errors import NotFound, NoxError
from nox_ui.plugins.settings import PluginSettings
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import GROUPS, SettingInfo
from nox_ui.services.settings import MAX_IMPORT_BYTES, InvalidSettings, SettingChange, check_import_size

DIFF_COLUMNS: list[dict[str, Any]] = [
    {"name": "key", "label": "Setting", "field": "key", "align": "left"},
    {"name": "old", "label": "Now", "field": "old", "align": "left"},
    {"name": "new", "label": "After", "field": "new", "align": "left"},
]


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize().replace("Smtp", "SMTP").replace("Api", "API")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "empty" if value == "" else str(value)


def _diff_rows(diff: list[SettingChange]) -> list[dict[str, str]]:
    return [{"key": c.key, "old": _shown(c.old), "new": _shown(c.new)} for c in diff]


def _show_status(label: ui.label, diff: list[SettingChange], errors: dict[str, str], pending: int) -> None:
    """The line under a set of inputs: invalid values, unsaved changes, or none."""
    changed = len(diff) if not errors else pending
    label.text = (
        f"{len(errors)} invalid value(s): fix them to save"
        if errors
        else f"{changed} unsaved change(s)"
        if changed
        else "No unsaved changes"
    )
    label.classes(replace="text-body2 " + ("text-negative" if errors else "nox-muted"))


class SettingsForm:
    """The inputs of one set of settings, the panel's or one plugin's: what was edited and is not saved
    yet (`pending`), each input's error in place, and the hints. Every rule comes from `validate` (the
    service's); `on_change` runs after every edit (the caller's status line and buttons)."""

    def __init__(
        self,
        info: Mapping[str, SettingInfo],
        *,
        values: Callable[[], dict[str, Any]],
        validate: Callable[[Mapping[str, Any]], tuple[Any, list[SettingChange]]],
        secrets_set: Callable[[], Mapping[str, bool]],
        on_change: Callable[[], None],
        mark: Callable[[str, str], str] = lambda kind, key: f"{kind}-{key}",
    ) -> None:
        self.info = info
        self.values = values  # {key: value} as in effect now
        self.validate = validate
        self.secrets_set = secrets_set
        self.on_change = on_change
        self.mark = mark  # ("setting" or "clear", key) -> the element's marker
        self.pending: dict[str, Any] = {}
        self.inputs: dict[str, ValueElement] = {}
        self.hints: dict[str, ui.label] = {}

    def hint_for(self, info: SettingInfo) -> str:
        if info.secret:
            state = "set" if self.secrets_set().get(info.key) else "not set"
            return f"{info.description} Currently {state}; leave empty to keep it."
        return f"{info.description} Default: {_shown(info.default)}."

    def check(self) -> tuple[list[SettingChange], dict[str, str]]:
        """Validate what is pending as a whole; show each error at its input."""
        try:
            _candidate, diff = self.validate(self.pending)
            errors: dict[str, str] = {}
        except InvalidSettings as exc:
            diff, errors = [], exc.errors
        self.show_errors(errors)
        return diff, errors

    def show_errors(self, errors: Mapping[str, str]) -> None:
        for key, element in self.inputs.items():
            if hasattr(element, "error"):
                element.error = errors.get(key)

    def edited(self, key: str, value: Any) -> None:
        info = self.info[key]
        if info.type == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if info.secret and value == "":
            self.pending.pop(key, None)  # empty means "keep the stored secret"
        elif value is None and info.type in {"integer", "number"}:
            self.pending[key] = ""  # an empty number field: shown as an error, not as "reset to default"
        else:
            self.pending[key] = value
        current = self.values()[key]
        if not info.secret and key in self.pending and self.pending[key] == current:
            del self.pending[key]
        self.on_change()

    def clear_secret(self, key: str) -> None:
        self.inputs[key].set_value("")
        self.pending[key] = ""
        self.hints[key].text = "Will be cleared when you save."
        self.on_change()

    def reset(self) -> None:
        """Back to the values in effect (after a save, or to discard the edits)."""
        self.pending.clear()
        values = self.values()
        for key, element in self.inputs.items():
            info = self.info[key]
            element.set_value("" if info.secret else values[key])
            self.hints[key].text = self.hint_for(info)
        self.pending.clear()
        self.on_change()

    def rows(self, infos: Iterable[SettingInfo]) -> None:
        """One row per setting: its name and key, its input, its hint (and "Clear it" for a set secret)."""
        values = self.values()
        for info in infos:
            with ui.row().classes("w-full items-start gap-4 no-wrap q-py-xs"):
                with ui.column().classes("gap-0 w-64 shrink-0"):
                    ui.label(_label(info.key)).classes("text-body2 text-weight-medium")
                    ui.label(info.key).classes("text-caption nox-muted font-mono")
                with ui.column().classes("gap-0 grow"):
                    self.inputs[info.key] = _input_for(
                        info, values[info.key], self.edited, mark=self.mark("setting", info.key)
                    )
                    if info.secret and self.secrets_set().get(info.key):
                        ui.button("Clear it", on_click=lambda key=info.key: self.clear_secret(key)).props(
                            "flat dense size=sm"
                        ).mark(self.mark("clear", info.key))
                    self.hints[info.key] = ui.label(self.hint_for(info)).classes("text-caption nox-muted")


def register(services: Services, guard: SessionGuard) -> None:
    config = services.settings

    @guard.page("/admin/settings", role=Role.ADMIN, title="Settings")
    def settings_page(principal: Principal) -> None:
        def refresh_state() -> None:
            """Errors in place, the unsaved-changes count, and the save button."""
            diff, errors = form.check()
            _show_status(status, diff, errors, len(form.pending))
            save_button.set_enabled(bool(diff) and not errors)
            discard_button.set_enabled(bool(form.pending))

        form = SettingsForm(
            config.info,
            values=lambda: config.current.model_dump(),
            validate=config.validate,
            secrets_set=config.secrets_set,
            on_change=refresh_state,
        )
        pending = form.pending
        reset_inputs = form.reset

        # -- saving: a diff first, then one atomic update --------------------------------------------
        with ui.dialog() as diff_dialog, card().classes("q-pa-md gap-3 min-w-[420px] max-w-2xl"):
            diff_title = ui.label("").classes("text-h6")
            diff_table = ui.table(columns=DIFF_COLUMNS, rows=[], row_key="key").props("flat dense")
            diff_table.classes("w-full").mark("settings-diff")
            diff_error = ui.label("").classes("text-negative text-body2").props("role=alert")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=diff_dialog.close).props("flat")
                diff_confirm = ui.button("Save").props("unelevated color=primary").mark("confirm-save")

        apply_action: dict[str, Any] = {}

        def show_diff(title: str, diff: list[SettingChange], confirm_label: str) -> None:
            diff_title.text = title
            diff_table.rows = _diff_rows(diff)
            diff_table.update()
            diff_error.text = ""
            diff_confirm.text = confirm_label
            diff_dialog.open()

        async def confirmed() -> None:
            actor = await guard.allow(Role.ADMIN)
            if actor is None:
                return
            ip = client_ip()
            try:
                if apply_action.get("document") is not None:
                    diff = await run.io_bound(config.import_, actor, apply_action["document"], ip=ip)
                else:
                    diff = await run.io_bound(config.update, actor, dict(pending), ip=ip)
            except NoxError as exc:
                diff_error.text = exc.message
                return
            diff_dialog.close()
            reset_inputs()
            ui.notify(f"Saved {len(diff or [])} setting(s); in effect now.", type="positive")

        diff_confirm.on_click(confirmed)

        def review() -> None:
            try:
                _candidate, diff = config.validate(pending)
            except InvalidSettings:
                refresh_state()
                return
            apply_action.clear()
            show_diff("Review changes", diff, "Save")

        # -- export and import ----------------------------------------------------------------------
        async def export() -> None:
            if await guard.allow(Role.ADMIN) is None:
                return
            document = json.dumps(config.export(), indent=2) + "\n"
            ui.download.content(document, "nox-ui-settings.json", "application/json")

        async def imported(event: events.UploadEventArguments) -> None:
            upload.reset()
            import_dialog.close()
            actor = await guard.allow(Role.ADMIN)
            if actor is None:
                return
            try:
                check_import_size(event.file.size())  # the upload's own limit is only the browser's
                document = json.loads(await event.file.text())
                diff = await run.io_bound(config.import_, actor, document, dry_run=True)
            except ValueError:
                ui.notify("That file is not JSON: choose a settings export (.json).", type="negative")
                return
            except NoxError as exc:
                ui.notify(f"Import refused, nothing changed: {exc.message}", type="negative", multi_line=True)
                return
            if not diff:
                ui.notify("The file matches the current settings: nothing to import.", type="info")
                return
            apply_action.clear()
            apply_action["document"] = document
            show_diff(f"Import: {len(diff)} change(s) (dry run)", diff, "Import")

        with ui.dialog() as import_dialog, card().classes("q-pa-md gap-3 min-w-[360px]"):
            ui.label("Import settings").classes("text-h6")
            ui.label(
                "Choose a file made by Export. You will see what would change before anything does."
            ).classes("text-body2 nox-muted")
            upload = (
                ui.upload(on_upload=imported, auto_upload=True, max_file_size=MAX_IMPORT_BYTES)
                .props("accept=.json,application/json flat bordered")
                .classes("w-full")
                .mark("settings-upload")
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=import_dialog.close).props("flat")

        # -- the page -------------------------------------------------------------------------------
        with frame(guard, principal, "Settings"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Settings").classes("text-h5")
                ui.space()
                ui.button("Export", icon="download", on_click=export).props("flat").mark("export")
                ui.button("Import", icon="upload", on_click=import_dialog.open).props("flat").mark("import")
            ui.label(
                "Changes take effect as soon as they are saved, without a restart, and are recorded "
                "in the audit log."
            ).classes("text-body2 nox-muted")

            for group in GROUPS:
                members = [info for info in config.info.values() if info.group == group]
                with card().classes("w-full q-pa-md gap-1").mark(f"group-{group}"):
                    ui.label(group).classes("text-subtitle1 text-weight-medium")
                    form.rows(members)

            with ui.row().classes("w-full items-center gap-3 sticky bottom-0 q-py-sm nox-save-bar"):
                status = (
                    ui.label("No unsaved changes").classes("text-body2 nox-muted").mark("settings-status")
                )
                ui.space()
                discard_button = ui.button("Discard", on_click=reset_inputs).props("flat").mark("discard")
                save_button = (
                    ui.button("Review and save", on_click=review)
                    .props("unelevated color=primary")
                    .mark("review-save")
                )
            refresh_state()
            _plugin_sections(services, guard)  # below the bar: each has a Save of its own


def _plugin_sections(services: Services, guard: SessionGuard) -> None:
    """After the panel's groups: one section per loaded plugin that has settings, each with its own
    Save. The sections follow plugins being enabled and disabled while the page is open."""
    plugin_settings = services.plugin_settings
    shown: list[str] = []

    @ui.refreshable
    def sections() -> None:
        shown[:] = plugin_settings.plugins()
        for name in shown:
            try:
                info = plugin_settings.info(name)
            except NotFound:  # unloaded in the meantime
                continue
            _plugin_section(plugin_settings, guard, name, info)

    def plugins_changed(_name: str) -> None:
        if plugin_settings.plugins() != shown:
            sections.refresh()

    with ui.column().classes("w-full gap-4 q-pa-none").mark("plugin-settings"):
        sections()
    ui_event(services.plugins.changed).subscribe(plugins_changed)


def _plugin_section(
    plugin_settings: PluginSettings, guard: SessionGuard, name: str, info: dict[str, SettingInfo]
) -> None:
    def values() -> dict[str, Any]:
        return plugin_settings.values(name)

    def refresh_state() -> None:
        diff, errors = form.check()
        _show_status(status, diff, errors, len(form.pending))
        save_button.set_enabled(bool(form.pending))  # a refusal is shown in place and notified
        discard_button.set_enabled(bool(form.pending))

    form = SettingsForm(
        info,
        values=values,
        validate=lambda changes: plugin_settings.validate(name, changes),
        secrets_set=lambda: plugin_settings.secrets_set(name),
        on_change=refresh_state,
        mark=lambda kind, key: f"plugin-{kind}-{name}-{key}",
    )

    async def save() -> None:
        changes, ip = dict(form.pending), client_ip()
        refused: dict[str, str] = {}

        def work(actor: Principal) -> tuple[str, int]:
            try:
                return "saved", len(plugin_settings.update(actor, name, changes, ip=ip))
            except InvalidSettings as exc:
                refused.update(exc.errors)
                raise

        done = await guard.act(Role.ADMIN, work, "")
        if not done:  # refused (notified by the guard): the errors in place, nothing stored
            if refused:
                form.show_errors(refused)
                _show_status(status, [], refused, len(form.pending))
            return
        form.reset()
        ui.notify(f"Saved {done[1]} setting(s) of {name}; in effect now.", type="positive")

    # The anchor /admin/plugins links to: /admin/settings#plugin-<name> (names are [a-z0-9_-]).
    with card().classes("w-full q-pa-md gap-1").props(f"id=plugin-{name}").mark(f"plugin-group-{name}"):
        ui.label(f"Plugin: {name}").classes("text-subtitle1 text-weight-medium")
        form.rows(info.values())
        with ui.row().classes("w-full items-center gap-3 q-pt-sm"):
            status = (
                ui.label("No unsaved changes")
                .classes("text-body2 nox-muted")
                .mark(f"plugin-settings-status-{name}")
            )
            ui.space()
            discard_button = (
                ui.button("Discard", on_click=form.reset)
                .props("flat")
                .mark(f"plugin-settings-discard-{name}")
            )
            save_button = (
                ui.button("Save", on_click=save)
                .props("unelevated color=primary")
                .mark(f"plugin-settings-save-{name}")
            )
    refresh_state()


def _input_for(info: SettingInfo, value: Any, edited: Any, *, mark: str = "") -> ValueElement:
    """The input for one setting, by its registry type; every change goes through `edited`."""
    key = info.key
    mark = mark or f"setting-{key}"
    label = f'aria-label="{_label(key)}"'
    if info.type == "boolean":
        return ui.switch(value=value, on_change=lambda e: edited(key, e.value)).props(label).mark(mark)
    if info.type == "integer":
        return (
            ui.number(
                value=value,
                min=info.constraints.get("minimum"),
                max=info.constraints.get("maximum"),
                step=1,
                precision=0,
                on_change=lambda e: edited(key, e.value),
            )
            .without_auto_validation()  # errors come from the whole change set, see refresh_state
            .props(f"outlined dense {label}")
            .classes("w-80")  # wide enough for a one-line error such as "must be at most 99"
            .mark(mark)
        )
    if info.type == "number":
        return (
            ui.number(
                value=value,
                min=info.constraints.get("minimum"),
                max=info.constraints.get("maximum"),
                on_change=lambda e: edited(key, e.value),
            )
            .without_auto_validation()
            .props(f"outlined dense {label}")
            .classes("w-80")  # wide enough for a one-line error such as "must be at most 99"
            .mark(mark)
        )
    if info.secret:
        return (
            ui.input(
                password=True,
                password_toggle_button=True,
                placeholder="unchanged",
                on_change=lambda e: edited(key, e.value),
            )
            .without_auto_validation()
            .props(f"outlined dense autocomplete=new-password {label}")
            .classes("w-full max-w-md")
            .mark(mark)
        )
    return (
        ui.input(value=value, on_change=lambda e: edited(key, e.value))
        .without_auto_validation()
        .props(f"outlined dense {label}")
        .classes("w-full max-w-md")
        .mark(mark)
    )
