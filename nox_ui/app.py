"""The composition root: builds every service once and hands them to the API, the pages and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from nox_ui.alerts.notify import NotifierService
from nox_ui.alerts.retention import AlertHistoryRetention
from nox_ui.alerts.wiring import Alerting, wire_alerting
from nox_ui.config import Settings
from nox_ui.crypto import SecretBox
from nox_ui.db import Database
from nox_ui.metrics.collectors import default_collectors
from nox_ui.metrics.history import HistoryStore, Retention
from nox_ui.metrics.sampler import Sampler
from nox_ui.metrics.service import MetricsService
from nox_ui.outbound import OutboundGuard
from nox_ui.runtime_settings import RuntimeSettings
from nox_ui.services.audit import AuditService
from nox_ui.services.auth import AuthService, LoginPolicy, SessionPolicy
from nox_ui.services.processes import ProcessService
from nox_ui.services.ratelimit import ApiRateLimiter
from nox_ui.services.retention import AuditRetention, Housekeeping
from nox_ui.services.settings import SettingsService
from nox_ui.services.setup import SetupService
from nox_ui.services.users import UserService


@dataclass
class Services:
    config: Settings  # the process configuration (environment, fixed at start)
    db: Database
    secrets: SecretBox
    outbound: OutboundGuard
    audit: AuditService
    settings: SettingsService  # the runtime settings admins change in the panel
    users: UserService
    auth: AuthService
    setup: SetupService
    processes: ProcessService
    metrics: MetricsService
    api_limits: ApiRateLimiter
    audit_retention: AuditRetention
    alert_retention: AlertHistoryRetention
    housekeeping: Housekeeping
    notifiers: NotifierService
    alerts: Alerting

    def close(self) -> None:
        self.alerts.close()
        self.metrics.history.close()
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    db = Database(settings.resolved_database_url)
    secrets = SecretBox(settings.load_secret_key(), [key for key in [settings.next_secret_key()] if key])
    audit = AuditService.with_head(db, settings.data_dir, secrets.secret_key, [settings.next_secret_key()])
    users = UserService(db, audit)
    auth = AuthService(db, users, audit, secret_key=secrets.secret_key)
    history = HistoryStore(db, settings.data_dir / "cache" / "history", interval=settings.sample_interval)
    metrics = MetricsService(Sampler(default_collectors()), history, settings.sample_interval)
    config = SettingsService(db, audit, secrets)
    # The one guarded client for every outbound request (webhooks and apprise now; OIDC, scrapes later).
    outbound = OutboundGuard(lambda: config.current.notify_allowed_hosts)
    notifiers = NotifierService(
        db,
        audit,
        lambda: config.current,
        base_url=settings.resolved_base_url,
        secrets=secrets,
        outbound=outbound,
    )
    alerts = wire_alerting(db, audit, metrics, base_url=settings.resolved_base_url, dispatcher=notifiers)
    api_limits = ApiRateLimiter()

    def apply(live: RuntimeSettings, changed: frozenset[str]) -> None:
        """Hand changed runtime settings to the services that use them; they read them per request."""
        auth.session_policy = SessionPolicy(
            idle=timedelta(minutes=live.session_idle_minutes),
            absolute=timedelta(hours=live.session_max_hours),
        )
        auth.login_policy = LoginPolicy(
            max_failures=live.login_max_failures, lockout_seconds=live.login_lockout_seconds
        )
        history.retention = Retention(minute_days=live.history_minute_days, hour_days=live.history_hour_days)
        if "api_rate_limit" in changed:
            api_limits.configure(live.api_rate_limit)

    config.subscribe(apply)
    audit_retention = AuditRetention(audit, config, settings.data_dir / "backups")
    alert_retention = AlertHistoryRetention(db, notifiers, config)
    return Services(
        config=settings,
        db=db,
        secrets=secrets,
        outbound=outbound,
        audit=audit,
        settings=config,
        users=users,
        auth=auth,
        setup=SetupService(users),
        processes=ProcessService(audit, lambda: config.current),
        metrics=metrics,
        api_limits=api_limits,
        audit_retention=audit_retention,
        alert_retention=alert_retention,
        housekeeping=Housekeeping([audit_retention.run_once, alert_retention.run_once]),
        notifiers=notifiers,
        alerts=alerts,
    )
