"""Plugins' own settings: each plugin's `settings_schema` model, stored in `plugin_settings`.

The same rules as the panel's runtime settings (`services/settings.py`): only values that differ from
their default are stored; a change is validated as a whole by the plugin's model (a bad value is an
`InvalidSettings`, 422, naming the key), written with its `plugin.settings.update` audit event in one
transaction, then announced on `changed`. The settings page and the API read the fields through
`runtime_settings.registry(model)`, so a plugin's settings look and validate like the built-in ones.
A field declared secret (`json_schema_extra={"secret": True}`) is treated as the built-in secrets are:
encrypted at rest with the panel's `SecretBox`, never returned by `values()` (None), and shown in the
diff and the audit log only as set / unset. Stored values outlive a disabled plugin and return when it
is enabled again.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from typing import Any

from loguru import logger
from pydantic import BaseModel, ValidationError
from sqlmodel import select

from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.db import Database
from nox_ui.errors import Invalid, NotFound
from nox_ui.models import PluginSetting, utcnow
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import SettingInfo, field_errors, registry
from nox_ui.services.audit import AuditService
from nox_ui.services.settings import InvalidSettings, SettingChange
from nox_ui.signals import Signal


class PluginSettings:
    def __init__(self, db: Database, audit: AuditService, secrets: SecretBox) -> None:
        self.db = db
        self.audit = audit
        self.secrets = secrets
        self.changed: Signal[str] = Signal("plugin_settings.changed")  # the plugin's name
        self._models: dict[str, type[BaseModel]] = {}
        self._info: dict[str, dict[str, SettingInfo]] = {}
        self._current: dict[str, BaseModel] = {}
        self._lock = threading.Lock()

    # -- the plugins that have settings --------------------------------------------------------------

    def register(self, plugin: str, model: Any, *, title: str = "") -> None:
        """Take a plugin's `settings_schema`; ValueError says what is wrong with it."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ValueError(
                f"settings_schema must return a pydantic model class, not {type(model).__name__}"
            )
        missing = [key for key, field in model.model_fields.items() if field.is_required()]
        if missing:
            raise ValueError(f"every plugin setting needs a default; these have none: {', '.join(missing)}")
        info = registry(model, group=title or plugin)
        with self._lock:
            self._models[plugin] = model
            self._info[plugin] = info
            self._current[plugin] = self._load(plugin, model)

    def unregister(self, plugin: str) -> None:
        with self._lock:
            self._models.pop(plugin, None)
            self._info.pop(plugin, None)
            self._current.pop(plugin, None)

    def plugins(self) -> list[str]:
        return list(self._models)

    def info(self, plugin: str) -> dict[str, SettingInfo]:
        found = self._info.get(plugin)
        if found is None:
            raise NotFound(f"plugin {plugin!r} is not enabled or has no settings")
        return found

    def current(self, plugin: str) -> BaseModel:
        found = self._current.get(plugin)
        if found is None:
            raise NotFound(f"plugin {plugin!r} is not enabled or has no settings")
        return found

    def values(self, plugin: str) -> dict[str, Any]:
        """The plugin's settings as the API shows them: secrets as None."""
        info = self.info(plugin)
        return {k: None if info[k].secret else v for k, v in self.current(plugin).model_dump().items()}

    def secrets_set(self, plugin: str) -> dict[str, bool]:
        """{secret key: whether it holds a value}, for the settings page (which never shows the value)."""
        info = self.info(plugin)
        return {k: bool(v) for k, v in self.current(plugin).model_dump().items() if info[k].secret}

    def _secret(self, plugin: str, key: str) -> bool:
        info = self._info.get(plugin, {}).get(key)
        return info is not None and info.secret

    # -- reading and changing -----------------------------------------------------------------------

    def _load(self, plugin: str, model: type[BaseModel]) -> BaseModel:
        with self.db.session() as session:
            rows = session.exec(select(PluginSetting).where(PluginSetting.plugin == plugin)).all()
        stored: dict[str, Any] = {}
        for row in rows:
            if row.key not in model.model_fields:
                logger.warning(
                    "plugin {}: ignoring stored setting {!r}: no longer a setting", plugin, row.key
                )
                continue
            try:
                value = json.loads(row.value)
                if self._secret(plugin, row.key) and isinstance(value, str):
                    value = self.secrets.decrypt(value)
                stored[row.key] = value
            except ValueError:
                logger.warning("plugin {}: ignoring stored setting {!r}: not valid JSON", plugin, row.key)
            except SecretUnreadable as exc:
                logger.warning("plugin {}: ignoring stored setting {!r}: {}", plugin, row.key, exc)
        while True:
            try:
                return model(**stored)
            except ValidationError as exc:
                bad = [key for key in field_errors(exc, model) if key in stored] or list(stored)
                for key in bad:
                    logger.warning(
                        "plugin {}: stored setting {!r} is invalid; using its default", plugin, key
                    )
                    stored.pop(key, None)

    def validate(self, plugin: str, changes: Mapping[str, Any]) -> tuple[BaseModel, list[SettingChange]]:
        model = self._models.get(plugin)
        if model is None:
            raise NotFound(f"plugin {plugin!r} is not enabled or has no settings")
        if not isinstance(changes, Mapping):
            raise Invalid("settings must be a JSON object of {name: value}")
        info = self._info[plugin]
        unknown = {key: "unknown setting" for key in changes if key not in info}
        if unknown:
            raise InvalidSettings(unknown)
        current = self._current[plugin].model_dump()
        merged = {**current, **{k: info[k].default if v is None else v for k, v in changes.items()}}
        try:
            candidate = model(**merged)
        except ValidationError as exc:
            raise InvalidSettings(field_errors(exc, model)) from None
        after = candidate.model_dump()
        not_finite = {
            k: "must be a finite number"
            for k, v in after.items()
            if isinstance(v, float) and not math.isfinite(v)
        }
        if not_finite:
            raise InvalidSettings(not_finite)
        return candidate, [
            _change(k, current[k], after[k], info[k].secret) for k in info if after[k] != current[k]
        ]

    def update(
        self, actor: Principal, plugin: str, changes: Mapping[str, Any], *, ip: str = ""
    ) -> list[SettingChange]:
        """Apply `changes` to a plugin's settings, all or nothing (admin only, audited)."""
        self.audit.authorize(
            actor,
            Role.ADMIN,
            attempted="plugin.settings.update",
            target_type="plugin",
            target_label=plugin,
            ip=ip,
        )
        with self._lock:
            candidate, diff = self.validate(plugin, changes)
            if not diff:
                return []
            defaults = {key: info.default for key, info in self._info[plugin].items()}
            values = candidate.model_dump()
            with self.db.session() as session:
                for change in diff:
                    row = session.get(PluginSetting, (plugin, change.key))
                    if values[change.key] == defaults[change.key]:
                        if row is not None:
                            session.delete(row)
                        continue
                    if row is None:
                        row = PluginSetting(plugin=plugin, key=change.key, value="")
                    value = values[change.key]
                    if change.secret and isinstance(value, str):
                        value = self.secrets.encrypt(value)
                    row.value = json.dumps(value)
                    row.updated_at = utcnow()
                    row.updated_by = actor.username[:64]
                    session.add(row)
                self.audit.record(
                    session,
                    actor=actor,
                    action="plugin.settings.update",
                    outcome="success",
                    target_type="plugin",
                    target_label=plugin,
                    details={c.key: {"old": c.old, "new": c.new} for c in diff},
                    ip=ip,
                )
                session.commit()
            self._current[plugin] = candidate
        logger.info(
            "plugin {} settings changed by {}: {}", plugin, actor.username, ", ".join(c.key for c in diff)
        )
        self.changed.emit(plugin)
        return diff


def _change(key: str, old: Any, new: Any, secret: bool) -> SettingChange:
    """A change as the diff and the audit log show it: a secret's value only as set / unset."""
    if not secret:
        return SettingChange(key, old, new)
    shown_old, shown_new = ("set" if old else "unset"), ("set" if new else "unset")
    return SettingChange(
        key, shown_old, "set (new value)" if shown_old == shown_new else shown_new, secret=True
    )
