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
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from nox_ui.cache import Cache
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
from nox_ui.supervisor import STORAGE_JOB, Supervisor

if TYPE_CHECKING:
    from nox_ui.alerts.notify import NotifierService
    from nox_ui.alerts.retention import AlertHistoryRetention
    from nox_ui.alerts.wiring import Alerting
    from nox_ui.metrics.service import MetricsService
    from nox_ui.plugins.host import PluginHost
    from nox_ui.search.service import SearchService
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
    cache: Cache  # every namespace (history, processes, search, host, plugins); disk opened on first use

    def close(self) -> None:
        self.cache.close()
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
        cache=Cache(config.data_dir / "cache"),
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
    search: SearchService  # the index in DATA_DIR/index, its writer job, searches by role
    supervisor: Supervisor  # runs every background job, restarts the ones that crash, knows their state

    def start(self) -> None:
        """Start the background work on the running event loop, each job under the supervisor
        (idempotent): the sampler (and its history writes), the delivery queue's thread, the enabled
        plugins with the watch of their decisions, hourly housekeeping (which runs once now) and the
        search index's writer."""
        for reported in (STORAGE_JOB, "alerts"):
            self.supervisor.watch(reported)
        self.metrics.start()
        self.notifiers.queue.start()
        self.supervisor.task("plugins", self.plugins.run)
        self.housekeeping.start()
        self.search.start(self.supervisor)

    async def stop(self) -> None:
        """End the background work: housekeeping and the plugins (a load under way is cancelled and
        leaves nothing registered), sampling and its last history write, then the alert writes and the
        messages they queue, then the delivery queue (a send in progress stays pending for the next
        start), then anything else the supervisor runs."""
        await self.housekeeping.stop()
        await self.plugins.stop()
        await self.metrics.stop()
        await self.alerts.engine.drain()
        await asyncio.to_thread(self.notifiers.queue.stop)
        await self.search.stop(self.supervisor)
        await self.supervisor.stop()

    def close(self) -> None:
        self.alerts.close()
        self.search.close()
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
    from nox_ui.search.index import IndexLayout
    from nox_ui.search.service import SearchService
    from nox_ui.services.api_limits import ApiRateLimiter
    from nox_ui.services.processes import ProcessService
    from nox_ui.services.retention import AuditRetention, Housekeeping

    core = build_core(config)
    settings = core.settings
    supervisor = Supervisor()
    core.db.storage_health = lambda error: supervisor.report(STORAGE_JOB, error)
    history = HistoryStore(core.db, core.cache, interval=config.sample_interval)
    metrics = MetricsService(
        Sampler(default_collectors()), history, config.sample_interval, supervisor=supervisor
    )
    notifiers = NotifierService(
        core.db,
        core.audit,
        lambda: settings.current,
        base_url=config.resolved_base_url,
        secrets=core.secrets,
        outbound=core.outbound,
        supervisor=supervisor,
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
    processes = ProcessService(core.audit, lambda: settings.current, core.cache)
    plugins = PluginHost(
        core.plugin_catalog, core.plugin_settings, metrics, core.audit, config.data_dir, cache=core.cache
    )
    search = SearchService(
        core.db,
        IndexLayout(config.data_dir / "index"),
        audit=core.audit,
        processes=processes,
        plugins=plugins,
        cache=core.cache,
        data_dir=config.data_dir,
    )
    return Services(
        **{name: getattr(core, name) for name in Core.__dataclass_fields__},
        processes=processes,
        metrics=metrics,
        api_limits=api_limits,
        audit_retention=audit_retention,
        alert_retention=alert_retention,
        housekeeping=Housekeeping(
            [audit_retention.run_once, alert_retention.run_once], supervisor=supervisor
        ),
        notifiers=notifiers,
        alerts=alerts,
        plugins=plugins,
        search=search,
        supervisor=supervisor,
    )
