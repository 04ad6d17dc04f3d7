"""Runtime configuration: read, validate, change, export and import the settings of the registry.

Values live in the `runtime_settings` table (only those that differ from their default, so a new
default reaches every install that never changed it). The service keeps the current validated
`RuntimeSettings` in memory; a change is validated as a whole, written in one transaction together
with its audit event, then handed to every subscriber (the sign-in policies, history retention, ...),
so it takes effect without a restart. Secrets (`smtp_password`) are write-only: never returned by
`public()` or `export()`, shown as set/unset, and redacted in the audit log; at rest they are
encrypted with the panel's `SecretBox` (the key lives outside the database).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pydantic import ValidationError
from sqlmodel import Session, select

from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.db import Database
from nox_ui.errors import Invalid, NoxError
from nox_ui.models import RuntimeSetting, utcnow
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import SECRET_KEYS, RuntimeSettings, SettingInfo, field_errors, registry
from nox_ui.services.audit import AuditService
from nox_ui.signals import Signal

EXPORT_FORMAT = "nox-ui-settings/1"
# The largest settings import accepted (an export is a few KiB), from the page and the API alike.
MAX_IMPORT_BYTES = 256 * 1024


class ImportTooLarge(NoxError):
    status_code = 413


def check_import_size(size: int) -> None:
    """ImportTooLarge (413) for an import document over MAX_IMPORT_BYTES: refused before it is parsed."""
    if size > MAX_IMPORT_BYTES:
        raise ImportTooLarge(
            f"a settings import is at most {MAX_IMPORT_BYTES // 1024} KiB; this one is {-(-size // 1024)} KiB"
        )


# Called with the new settings and the keys that changed.
SettingsListener = Callable[[RuntimeSettings, frozenset[str]], None]


class InvalidSettings(Invalid):
    """A change refused as a whole; `errors` maps each offending key to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class SettingChange:
    key: str
    old: Any
    new: Any
    secret: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new, "secret": self.secret}


def _shown(key: str, value: Any) -> Any:
    """What the outside may see of a value: secrets only as set/unset."""
    if key in SECRET_KEYS:
        return "set" if value else "unset"
    return value


class SettingsService:
    def __init__(self, db: Database, audit: AuditService, secrets: SecretBox) -> None:
        self.db = db
        self.audit = audit
        self.secrets = secrets
        self.info: dict[str, SettingInfo] = registry()
        self._lock = threading.Lock()
        self.changed: Signal[tuple[RuntimeSettings, frozenset[str]]] = Signal("settings.changed")
        self._current = self._load()

    # -- reading -----------------------------------------------------------------------------------

    @property
    def current(self) -> RuntimeSettings:
        return self._current

    def _load(self) -> RuntimeSettings:
        """Stored values over the defaults. A stored value that no longer validates (a setting renamed
        or tightened in a newer release) falls back to its default with a warning, never a failed start."""
        with self.db.session() as session:
            rows = session.exec(select(RuntimeSetting)).all()
        stored: dict[str, Any] = {}
        for row in rows:
            if row.key not in self.info:
                logger.warning("ignoring stored setting {!r}: not a known setting", row.key)
                continue
            try:
                value = json.loads(row.value)
                if row.key in SECRET_KEYS and isinstance(value, str):
                    value = self.secrets.decrypt(value)
                stored[row.key] = value
            except ValueError:
                logger.warning("ignoring stored setting {!r}: not valid JSON", row.key)
            except SecretUnreadable as exc:
                logger.warning("ignoring stored setting {!r}: {}", row.key, exc)
        while True:
            try:
                return RuntimeSettings(**stored)
            except ValidationError as exc:
                bad = [key for key in field_errors(exc) if key in stored] or list(stored)
                for key in bad:
                    logger.warning("stored setting {!r} is invalid; using its default", key)
                    stored.pop(key, None)

    def public(self) -> dict[str, Any]:
        """Every setting as a flat object; secrets as None."""
        values = self._current.model_dump()
        return {key: None if key in SECRET_KEYS else values[key] for key in self.info}

    def secrets_set(self) -> dict[str, bool]:
        values = self._current.model_dump()
        return {key: bool(values[key]) for key in SECRET_KEYS}

    def schema(self) -> dict[str, dict[str, Any]]:
        is_set = self.secrets_set()
        described = {}
        for key, info in self.info.items():
            entry: dict[str, Any] = {
                "type": info.type,
                "default": None if info.secret else info.default,
                "group": info.group,
                "description": info.description,
                "secret": info.secret,
                **info.constraints,
            }
            if info.secret:
                entry["is_set"] = is_set[key]
            described[key] = entry
        return described

    def export(self) -> dict[str, Any]:
        """Config as code: every non-secret setting, importable on this or another install."""
        values = self._current.model_dump()
        return {
            "format": EXPORT_FORMAT,
            "settings": {key: values[key] for key in self.info if key not in SECRET_KEYS},
        }

    # -- changing ----------------------------------------------------------------------------------

    def subscribe(self, listener: SettingsListener) -> None:
        """Call `listener(settings, changed_keys)` after every change, and once now with every key."""
        self.changed.connect(lambda change: listener(*change))
        listener(self._current, frozenset(self.info))

    def validate(self, changes: Mapping[str, Any]) -> tuple[RuntimeSettings, list[SettingChange]]:
        """The settings as they would be after `changes` (None resets a key to its default), and the
        diff. Raises InvalidSettings naming every bad key; changes nothing."""
        if not isinstance(changes, Mapping):
            raise Invalid("settings must be a JSON object of {name: value}")
        unknown = {key: "unknown setting" for key in changes if key not in self.info}
        if unknown:
            raise InvalidSettings(unknown)
        current = self._current.model_dump()
        merged = dict(current)
        for key, value in changes.items():
            merged[key] = self.info[key].default if value is None else value
        try:
            candidate = RuntimeSettings(**merged)
        except ValidationError as exc:
            raise InvalidSettings(field_errors(exc)) from None
        after = candidate.model_dump()
        diff = [_change(key, current[key], after[key]) for key in self.info if after[key] != current[key]]
        return candidate, diff

    def update(self, actor: Principal, changes: Mapping[str, Any], *, ip: str = "") -> list[SettingChange]:
        """Apply `changes` all or nothing (admin only), audit them, tell the subscribers; returns the diff."""
        self._authorize(actor, ip)
        with self._lock:
            candidate, diff = self.validate(changes)
            if not diff:
                return []
            self._store(actor, candidate, diff, ip, action="settings.update")
            self._current = candidate
        self._notify(candidate, frozenset(c.key for c in diff))
        return diff

    def import_(
        self, actor: Principal, document: Any, *, dry_run: bool = False, ip: str = ""
    ) -> list[SettingChange]:
        """Import an `export()` document: the settings it names take its values (secrets it leaves out
        keep theirs). With `dry_run`, only the diff is returned."""
        self._authorize(actor, ip)
        if not isinstance(document, Mapping) or not isinstance(document.get("settings"), Mapping):
            raise Invalid(
                'not a settings export: expected {"format": "' + EXPORT_FORMAT + '", "settings": {...}}'
            )
        if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise Invalid(
                f"unsupported settings format {document.get('format')!r}; expected {EXPORT_FORMAT!r}"
            )
        changes = dict(document["settings"])
        # An exported secret is never in the file; a null one there means "leave it as it is".
        for key in SECRET_KEYS:
            if changes.get(key, "") is None:
                del changes[key]
        if dry_run:
            return self.validate(changes)[1]
        with self._lock:
            candidate, diff = self.validate(changes)
            if not diff:
                return []
            self._store(actor, candidate, diff, ip, action="settings.import")
            self._current = candidate
        self._notify(candidate, frozenset(c.key for c in diff))
        return diff

    def _authorize(self, actor: Principal, ip: str) -> None:
        self.audit.authorize(actor, Role.ADMIN, attempted="settings.update", target_type="settings", ip=ip)

    def _store(
        self,
        actor: Principal,
        candidate: RuntimeSettings,
        diff: list[SettingChange],
        ip: str,
        *,
        action: str,
    ) -> None:
        values = candidate.model_dump()
        who = actor.username
        with self.db.session() as session:
            for change in diff:
                row = session.get(RuntimeSetting, change.key)
                if values[change.key] == self.info[change.key].default:
                    if row is not None:
                        session.delete(row)
                    continue
                if row is None:
                    row = RuntimeSetting(key=change.key, value="")
                    session.add(row)
                value = values[change.key]
                if change.key in SECRET_KEYS:
                    value = self.secrets.encrypt(value)
                row.value = json.dumps(value)
                row.updated_at = utcnow()
                row.updated_by = who[:64]
            # Secret keys are redacted by the audit service (their names say "password"), so the log
            # records that they changed, never to what.
            self.audit.record(
                session,
                actor=actor,
                action=action,
                outcome="success",
                target_type="settings",
                target_label=", ".join(c.key for c in diff)[:256],
                details={c.key: {"old": c.old, "new": c.new} for c in diff},
                ip=ip,
            )
            session.commit()
        logger.info("settings changed by {}: {}", who, ", ".join(c.key for c in diff))

    def reencrypt_secrets(self, session: Session, box: SecretBox) -> int:
        """Re-encrypt the stored secret settings under `box`'s key, in the caller's transaction (key
        rotation); returns how many rows changed."""
        rows = session.exec(select(RuntimeSetting).where(RuntimeSetting.key.in_(SECRET_KEYS))).all()  # type: ignore[attr-defined]
        for row in rows:
            value = json.loads(row.value)
            if isinstance(value, str):
                row.value = json.dumps(box.reencrypt(value))
                session.add(row)
        return len(rows)

    def _notify(self, settings: RuntimeSettings, changed: frozenset[str]) -> None:
        self.changed.emit((settings, changed))  # a failing subscriber is logged; the change is stored


def _change(key: str, old: Any, new: Any) -> SettingChange:
    if key not in SECRET_KEYS:
        return SettingChange(key, old, new)
    shown_old, shown_new = _shown(key, old), _shown(key, new)
    if shown_old == shown_new:
        shown_new = "set (new value)"
    return SettingChange(key, shown_old, shown_new, secret=True)
