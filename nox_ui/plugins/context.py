"""`PluginContext`: the stable surface a plugin may use. Every hook receives its plugin's own `ctx`.

Plugins use this and the types of `nox_ui.plugin`, never the panel's internals (services, models,
pages), which change between releases. What a context offers:

- `ctx.name`, `ctx.info` (version, description, ...), `ctx.logger` (loguru, bound to the plugin);
- `ctx.settings`: the plugin's settings (an instance of its `settings_schema` model), always current;
- `ctx.metrics.value(series)`, `.current()`, `.history(series, since, until)`, `.names()`;
- `ctx.audit(action, ...)`: an audit event `plugin.<name>.<action>`, in the same tamper-evident log;
- `ctx.allows(user, role)` / `ctx.check(user, role)`: the role check (a refusal is audited);
- `ctx.data_dir`: a folder of its own (DATA_DIR/plugin-data/<name>, created on first use);
- `ctx.cache`: a namespace of its own ("plugin:<name>") in the panel's cache (JSON values, never
  pickle): `get(key, default=None)`, `set(key, value, expire=None)`, `delete(key)`, `clear()`.

Reading the database (`history`, `audit`) blocks: from a page handler call it in a worker thread
(`await nicegui.run.io_bound(ctx.metrics.history, ...)`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from nox_ui.errors import Forbidden
from nox_ui.plugins.spec import PluginInfo, PluginUser, check_role
from nox_ui.roles import Principal, Role, Target, check

if TYPE_CHECKING:
    from loguru import Logger
    from pydantic import BaseModel

    from nox_ui.cache import Cache
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


class PluginCache:
    """A plugin's namespace of the panel's cache, with diskcache's `get`/`set(..., expire=)` surface.

    Values must be JSON (a tuple comes back as a list; anything else raises TypeError); keys are
    strings. It is the panel's one disk cache (DATA_DIR/cache, opened on first use), so `nox-ui cache
    clear` empties it too, and its hits, misses and size show on /metrics under the namespace."""

    def __init__(self, cache: Cache, plugin: str) -> None:
        self._cache = cache
        self.namespace = f"plugin:{plugin}"

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default` when there is none (or it expired)."""
        value = self._cache.get(self.namespace, _key(key))
        return default if value is None else value

    def set(self, key: str, value: Any, expire: float | None = None) -> bool:
        """Store `value` for `expire` seconds (None: until deleted or evicted). True, as diskcache."""
        self._cache.set(self.namespace, _key(key), value, ttl=expire)
        return True

    def delete(self, key: str) -> bool:
        self._cache.invalidate(self.namespace, _key(key))
        return True

    def clear(self) -> None:
        """Forget every value of this plugin (no other plugin's)."""
        self._cache.invalidate(self.namespace)


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"cache keys are strings, not {type(key).__name__}")
    return key


class PluginContext:
    def __init__(
        self,
        info: PluginInfo,
        *,
        data_root: Path,
        cache: Cache,
        audit: AuditService,
        metrics: MetricsService,
        settings: PluginSettings,
    ) -> None:
        self.info = info
        self.name = info.name
        self.logger: Logger = logger.bind(plugin=info.name)
        self.metrics = PluginMetrics(metrics)
        self._data_root = data_root
        self._panel_cache = cache
        self._audit = audit
        self._settings = settings
        self._cache: PluginCache | None = None

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
    def cache(self) -> PluginCache:
        """The plugin's namespace of the panel's cache (JSON values: `get`, `set(key, value, expire=...)`)."""
        if self._cache is None:
            self._cache = PluginCache(self._panel_cache, self.name)
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
        """Drop the cache handle at unload; the plugin's values stay for its next load."""
        self._cache = None


def _principal(user: PluginUser) -> Principal:
    return Principal(
        user_id=user.user_id, username=user.username, role=user.role, display_name=user.display_name
    )
