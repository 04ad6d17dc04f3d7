"""The plugins on offer and an admin's decision about each: discovered → enabled or disabled.

UI-free and import-free: the catalog never runs a plugin (see `discovery.py`); the runtime's
`PluginHost` loads the enabled ones (it calls `enable`/`disable` itself, and watches the table for
decisions made by another process). The decision is a row of `plugins`,
written with its audit event in one transaction; a plugin with no row is new and stays disabled.
The CLI (`nox-ui plugins ...`) uses the catalog alone; a running panel sees its changes within
`PluginHost.WATCH_SECONDS`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from nox_ui import __version__
from nox_ui.db import Database
from nox_ui.errors import Conflict, NotFound
from nox_ui.models import PluginRecord, utcnow
from nox_ui.plugins.discovery import Found, discover, incompatibility
from nox_ui.plugins.spec import PluginInfo
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import AuditService
from nox_ui.signals import Signal


@dataclass(frozen=True)
class CatalogEntry:
    info: PluginInfo
    enabled: bool  # the admin's decision (a refused or incompatible plugin is never loaded)
    refused: str  # why it may not be enabled at all ('' when it may)
    incompatible: bool = False  # refused because its supported panel versions exclude this one
    decided_at: float | None = None  # Unix time of the stored decision (None: never decided)

    @property
    def name(self) -> str:
        return self.info.name


class PluginCatalog:
    def __init__(
        self, db: Database, audit: AuditService, plugin_dir: Path, *, panel_version: str = __version__
    ) -> None:
        self.db = db
        self.audit = audit
        self.plugin_dir = plugin_dir
        self.panel_version = panel_version
        self.changed: Signal[str] = Signal("plugins.changed")  # a plugin's name, after its state changed
        self._found: list[Found] | None = None
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------------

    def found(self, *, refresh: bool = False) -> list[Found]:
        """What discovery found (cached; `refresh` looks again, e.g. after a plugin was dropped in)."""
        with self._lock:
            if self._found is None or refresh:
                self._found = discover(self.plugin_dir)
            return list(self._found)

    def decisions(self) -> dict[str, bool]:
        """{name: enabled} as stored."""
        return {name: row.enabled for name, row in self.records().items()}

    def records(self) -> dict[str, PluginRecord]:
        """The stored decisions, by plugin name."""
        with self.db.session() as session:
            return {row.name: row for row in session.exec(select(PluginRecord)).all()}

    def entries(
        self, *, refresh: bool = False, records: dict[str, PluginRecord] | None = None
    ) -> list[CatalogEntry]:
        """Every plugin found with its decision (`records`: the stored ones when already read)."""
        rows = self.records() if records is None else records
        entries = []
        for item in self.found(refresh=refresh):
            version_problem = "" if item.refused else incompatibility(item.info, self.panel_version)
            row = rows.get(item.info.name)
            entries.append(
                CatalogEntry(
                    info=item.info,
                    enabled=row.enabled if row is not None else False,
                    refused=item.refused or version_problem,
                    incompatible=bool(version_problem),
                    decided_at=row.updated_at.timestamp() if row is not None else None,
                )
            )
        return entries

    def entry(self, name: str) -> CatalogEntry:
        for entry in self.entries():
            if entry.name == name:
                return entry
        for entry in self.entries(refresh=True):
            if entry.name == name:
                return entry
        raise NotFound(f"no plugin named {name!r}; `nox-ui plugins list` shows those found")

    # -- deciding ----------------------------------------------------------------------------------

    def enable(self, actor: Principal, name: str, *, ip: str = "") -> CatalogEntry:
        return self._decide(actor, name, True, ip)

    def disable(self, actor: Principal, name: str, *, ip: str = "") -> CatalogEntry:
        return self._decide(actor, name, False, ip)

    def _decide(self, actor: Principal, name: str, enabled: bool, ip: str) -> CatalogEntry:
        action = "plugin.enable" if enabled else "plugin.disable"
        self.audit.authorize(
            actor, Role.ADMIN, attempted=action, target_type="plugin", target_label=name, ip=ip
        )
        try:
            entry = self.entry(name)
        except NotFound:
            # Uninstalled after it was enabled: it may still be disabled, so nothing of that name loads
            # by itself if a plugin of the same name appears later.
            if enabled or name not in self.decisions():
                raise
            entry = CatalogEntry(info=PluginInfo(name=name, source="not found"), enabled=True, refused="")
        if enabled and entry.refused:
            raise Conflict(f"plugin {name!r} cannot be enabled: {entry.refused}")
        with self.db.session() as session:
            row = session.get(PluginRecord, name)
            before = row.enabled if row is not None else False
            if row is None:
                row = PluginRecord(name=name)
            row.enabled = enabled
            row.updated_at = utcnow()
            row.updated_by = actor.username[:64]
            session.add(row)
            self.audit.record(
                session,
                actor=actor,
                action=action,
                outcome="success",
                target_type="plugin",
                target_label=name,
                details={"version": entry.info.version, "source": entry.info.source, "was_enabled": before},
                ip=ip,
            )
            session.commit()
        self.changed.emit(name)
        return CatalogEntry(
            info=entry.info, enabled=enabled, refused=entry.refused, incompatible=entry.incompatible
        )
