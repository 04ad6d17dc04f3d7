"""The composition root: builds every service once and hands them to the API, the pages and the CLI.

Two layers, built in this order:

- **The core** (`Core`, `build_core`): the process configuration, the database, secrets at rest, the
  outbound guard, audit, users, sign-in (`auth`), the runtime settings and first-run setup. It starts
  nothing and imports neither NiceGUI nor the runtime's libraries; the CLI builds only this.
- **The runtime** (`Services`, `build_services`): the core plus metrics (the sampler), the process
  list, the API rate limit, notifiers and their delivery queue, alerting (rules, silences, the engine,
  its restored episodes) and housekeeping. `Services` is the full set the API and the pages take; its
  one `start()` (on the running event loop) and `await stop()` run and end all background work, and
  `close()` then releases files and connections.

The runtime's modules are imported inside `build_services`, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from nox_ui.config import Settings
from nox_ui.crypto import SecretBox
from nox_ui.db import Database
from nox_ui.outbound import OutboundGuard
from nox_ui.plugins.catalog import PluginCatalog
from nox_ui.plugins.settings import PluginSettings
from nox_ui.runtime_settings import RuntimeSettings
from nox_ui.services.audit import AuditService
from nox_ui.services.auth import AuthService, LoginPolicy, SessionPolicy
from nox_ui.services.settings import SettingsService
from nox_ui.services.setup import SetupService
from nox_ui.services.users import UserService

if TYPE_CHECKING:
    from nox_ui.alerts.notify import NotifierService
    from nox_ui.alerts.retention import AlertHistoryRetention
    from nox_ui.alerts.wiring import Alerting
    from nox_ui.metrics.service import MetricsService
    from nox_ui.plugins.host import PluginHost
    from nox_ui.services.api_limits import ApiRateLimiter
    from nox_ui.services.processes import ProcessService
    from nox_ui.services.retention import AuditRetention, Housekeeping


@dataclass
class Core:
    config: Settings  # the process configuration (environment, fixed at start)
    db: Database
    secrets: SecretBox
    outbound: OutboundGuard
    audit: AuditService
    settings: SettingsService  # the runtime settings admins change in the panel
    users: UserService
    auth: AuthService
    setup: SetupService
    plugin_catalog: PluginCatalog  # the plugins found and the admins' decisions (runs none of them)
    plugin_settings: PluginSettings

    def close(self) -> None:
        self.db.dispose()


def build_core(config: Settings) -> Core:
    db = Database(config.resolved_database_url)
    secrets = SecretBox(config.load_secret_key(), [key for key in [config.next_secret_key()] if key])
    audit = AuditService.with_head(db, config.data_dir, secrets.secret_key, [config.next_secret_key()])
    users = UserService(db, audit)
    auth = AuthService(db, users, audit, secret_key=secrets.secret_key)
    settings = SettingsService(db, audit, secrets)
    # The one guarded client for every outbound request (webhooks and apprise now; OIDC, scrapes later).
    outbound = OutboundGuard(lambda: settings.current.notify_allowed_hosts)

    def apply(live: RuntimeSettings, _changed: frozenset[str]) -> None:
        """Hand changed runtime settings to the sign-in policies; they read them per request."""
        auth.session_policy = SessionPolicy(
            idle=timedelta(minutes=live.session_idle_minutes),
            absolute=timedelta(hours=live.session_max_hours),
        )
        auth.login_policy = LoginPolicy(
            max_failures=live.login_max_failures, lockout_seconds=live.login_lockout_seconds
        )

    settings.subscribe(apply)
    return Core(
        config=config,
        db=db,
        secrets=secrets,
        outbound=outbound,
        audit=audit,
        settings=settings,
        users=users,
        auth=auth,
        setup=SetupService(users),
        plugin_catalog=PluginCatalog(db, audit, config.data_dir / "plugins"),
        plugin_settings=PluginSettings(db, audit, secrets),
    )


@dataclass
class Services(Core):
    processes: ProcessService
    metrics: MetricsService
    api_limits: ApiRateLimiter
    audit_retention: AuditRetention
    alert_retention: AlertHistoryRetention
    housekeeping: Housekeeping
    notifiers: NotifierService
    alerts: Alerting
    plugins: PluginHost
    _housekeeping_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _plugins_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the background work on the running event loop (idempotent): the sampler, the delivery
        queue's thread, hourly housekeeping (which runs once now), and the enabled plugins."""
        self.metrics.start()
        self.notifiers.queue.start()
        if self._plugins_task is None:
            self._plugins_task = asyncio.get_running_loop().create_task(self.plugins.start(), name="plugins")
        if self._housekeeping_task is None or self._housekeeping_task.done():
            self._housekeeping_task = asyncio.get_running_loop().create_task(
                self.housekeeping.run(), name="housekeeping"
            )

    async def stop(self) -> None:
        """End the background work: sampling first, then the alert writes and the messages they queue,
        then the delivery queue (a send in progress stays pending for the next start)."""
        task, self._housekeeping_task = self._housekeeping_task, None
        if task is not None and not task.done():
            task.cancel()
        loading, self._plugins_task = self._plugins_task, None
        if loading is not None:
            # A plugin still loading finishes first (each hook is time-bounded); a failure was recorded.
            await asyncio.gather(loading, return_exceptions=True)
        await self.plugins.stop()
        await self.metrics.stop()
        await self.alerts.engine.drain()
        self.notifiers.queue.stop()

    def close(self) -> None:
        self.alerts.close()
        self.metrics.history.close()
        super().close()


def build_services(config: Settings) -> Services:
    """The core and the runtime on top of it; `start()` it on the event loop that serves the panel."""
    from nox_ui.alerts.notify import NotifierService
    from nox_ui.alerts.retention import AlertHistoryRetention
    from nox_ui.alerts.wiring import wire_alerting
    from nox_ui.metrics.collectors import default_collectors
    from nox_ui.metrics.history import HistoryStore, Retention
    from nox_ui.metrics.sampler import Sampler
    from nox_ui.metrics.service import MetricsService
    from nox_ui.plugins.host import PluginHost
    from nox_ui.services.api_limits import ApiRateLimiter
    from nox_ui.services.processes import ProcessService
    from nox_ui.services.retention import AuditRetention, Housekeeping

    core = build_core(config)
    settings = core.settings
    history = HistoryStore(core.db, config.data_dir / "cache" / "history", interval=config.sample_interval)
    metrics = MetricsService(Sampler(default_collectors()), history, config.sample_interval)
    notifiers = NotifierService(
        core.db,
        core.audit,
        lambda: settings.current,
        base_url=config.resolved_base_url,
        secrets=core.secrets,
        outbound=core.outbound,
    )
    alerts = wire_alerting(
        core.db, core.audit, metrics, base_url=config.resolved_base_url, dispatcher=notifiers
    )
    api_limits = ApiRateLimiter()

    def apply(live: RuntimeSettings, changed: frozenset[str]) -> None:
        """Hand changed runtime settings to the runtime's services that use them."""
        history.retention = Retention(minute_days=live.history_minute_days, hour_days=live.history_hour_days)
        if "api_rate_limit" in changed:
            api_limits.configure(live.api_rate_limit)

    settings.subscribe(apply)
    audit_retention = AuditRetention(core.audit, settings, config.data_dir / "backups")
    alert_retention = AlertHistoryRetention(core.db, notifiers, settings)
    return Services(
        **{name: getattr(core, name) for name in Core.__dataclass_fields__},
        processes=ProcessService(core.audit, lambda: settings.current),
        metrics=metrics,
        api_limits=api_limits,
        audit_retention=audit_retention,
        alert_retention=alert_retention,
        housekeeping=Housekeeping([audit_retention.run_once, alert_retention.run_once]),
        notifiers=notifiers,
        alerts=alerts,
        plugins=PluginHost(core.plugin_catalog, core.plugin_settings, metrics, core.audit, config.data_dir),
    )
