"""`PluginContext`: the stable surface a plugin may use. Every hook receives its plugin's own `ctx`.

Plugins use this and the types of `nox_ui.plugin`, never the panel's internals (services, models,
pages), which change between releases. What a context offers:

- `ctx.name`, `ctx.info` (version, description, ...), `ctx.logger` (loguru, bound to the plugin);
- `ctx.settings`: the plugin's settings (an instance of its `settings_schema` model), always current;
- `ctx.metrics.value(series)`, `.current()`, `.history(series, since, until)`, `.names()`;
- `ctx.audit(action, ...)`: an audit event `plugin.<name>.<action>`, in the same tamper-evident log;
- `ctx.allows(user, role)` / `ctx.check(user, role)`: the role check (a refusal is audited);
- `ctx.data_dir`: a folder of its own (DATA_DIR/plugin-data/<name>, created on first use);
- `ctx.cache`: a diskcache namespace of its own (JSON values, never pickle), opened on first use.

Reading the database (`history`, `audit`) blocks: from a page handler call it in a worker thread
(`await nicegui.run.io_bound(ctx.metrics.history, ...)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from nox_ui.errors import Forbidden
from nox_ui.plugins.spec import PluginInfo, PluginUser, check_role
from nox_ui.roles import Principal, Role, Target, check

if TYPE_CHECKING:
    from loguru import Logger
    from pydantic import BaseModel

    from nox_ui.metrics.service import MetricsService
    from nox_ui.plugins.settings import PluginSettings
    from nox_ui.services.audit import AuditService


class PluginMetrics:
    """Read-only access to the panel's metrics: the last sample and stored history."""

    def __init__(self, metrics: MetricsService) -> None:
        self._metrics = metrics

    def current(self) -> dict[str, float]:
        """{series id: value} of the last sample (every collector's, built-in and plugins')."""
        sample = self._metrics.last
        return dict(sample.values) if sample is not None else {}

    def value(self, series: str) -> float | None:
        """One series' value in the last sample, e.g. `cpu.percent` or `disk.used_percent{mount="/"}`."""
        sample = self._metrics.last
        return sample.values.get(series) if sample is not None else None

    def names(self) -> list[str]:
        """Every metric name the sampler knows."""
        return sorted(self._metrics.specs)

    def history(
        self, series: str, since: float, until: float | None = None, step: int | None = None
    ) -> list[tuple[int, float]]:
        """[(unix seconds, average)] between `since` and `until` (now); blocks on the database."""
        result = self._metrics.query(series, since, until if until is not None else time.time(), step)
        return [(ts, avg) for ts, avg, _min, _max in result.points]


class PluginContext:
    def __init__(
        self,
        info: PluginInfo,
        *,
        data_root: Path,
        cache_root: Path,
        audit: AuditService,
        metrics: MetricsService,
        settings: PluginSettings,
    ) -> None:
        self.info = info
        self.name = info.name
        self.logger: Logger = logger.bind(plugin=info.name)
        self.metrics = PluginMetrics(metrics)
        self._data_root = data_root
        self._cache_root = cache_root
        self._audit = audit
        self._settings = settings
        self._cache: Any = None
        self._closers: list[Callable[[], None]] = []

    @property
    def settings(self) -> BaseModel:
        """The plugin's settings as its `settings_schema` model; an error if it declared none."""
        return self._settings.current(self.name)

    @property
    def data_dir(self) -> Path:
        path = self._data_root / self.name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    @property
    def cache(self) -> Any:
        """A `diskcache.Cache` of the plugin's own, storing JSON (`get`, `set(key, value, expire=...)`)."""
        if self._cache is None:
            from diskcache import Cache, JSONDisk

            self._cache = Cache(str(self._cache_root / self.name), disk=JSONDisk, size_limit=64 * 2**20)
            self._closers.append(self._cache.close)
        return self._cache

    def allows(self, user: PluginUser, role: Role | str) -> bool:
        return user.can(role)

    def check(self, user: PluginUser, role: Role | str, *, what: str = "") -> None:
        """Raise `Forbidden` unless `user` holds `role`; the refusal is audited (blocks on the database)."""
        need = check_role(role)
        if user.can(need):
            return
        check(
            _principal(user),
            need,
            Target("plugin", f"{self.name}: {what}" if what else self.name),
            audit=self._audit,
        )
        raise Forbidden(f"this needs the {need.value} role")  # check raised already; kept for type checkers

    def audit(
        self,
        action: str,
        *,
        user: PluginUser | None = None,
        target: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "success",
    ) -> None:
        """Record `plugin.<name>.<action>` (by `user`, or by the plugin itself) in the audit log."""
        if outcome not in {"success", "failure", "denied"}:
            raise ValueError("outcome is success, failure or denied")
        self._audit.record_now(
            actor=_principal(user) if user is not None else Principal.system(f"plugin:{self.name}"),
            action=f"plugin.{self.name}.{action}"[:64],
            outcome=outcome,
            target_type="plugin",
            target_label=(target or self.name)[:256],
            details=details or {},
        )

    def close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception:
                self.logger.exception("closing the plugin's cache failed")
        self._closers.clear()
        self._cache = None


def _principal(user: PluginUser) -> Principal:
    return Principal(
        user_id=user.user_id, username=user.username, role=user.role, display_name=user.display_name
    )
