"""Alert history retention: resolved episodes older than `alert_history_days` are deleted with their
delivery logs (ON DELETE CASCADE), and so are old deliveries of no alert (notifier tests). 0 keeps
them all. `Housekeeping` (services/retention.py) runs it once an hour."""

from __future__ import annotations

from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import delete
from sqlmodel import col

from nox_ui.alerts.notify import NotifierService
from nox_ui.alerts.state import AlertState
from nox_ui.db import Database
from nox_ui.models import Alert, utcnow
from nox_ui.services.settings import SettingsService


def prune_resolved(db: Database, before: datetime) -> int:
    """Delete resolved episodes that ended before `before`, their delivery logs with them; firing
    episodes are never touched. Returns how many went."""
    with db.session() as session:
        result = session.execute(
            delete(Alert).where(col(Alert.state) == AlertState.RESOLVED, col(Alert.resolved_at) < before)
        )
        session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


class AlertHistoryRetention:
    def __init__(self, db: Database, notifiers: NotifierService, settings: SettingsService) -> None:
        self.db = db
        self.notifiers = notifiers
        self.settings = settings

    def run_once(self, now: datetime | None = None) -> tuple[int, int] | None:
        """Delete resolved alerts (with their delivery logs) and deliveries of no alert older than the
        retention; (alerts, deliveries) deleted, or None when retention is off."""
        days = self.settings.current.alert_history_days
        if days <= 0:
            return None
        before = (now or utcnow()) - timedelta(days=days)
        alerts = prune_resolved(self.db, before)
        orphans = self.notifiers.prune_orphan_deliveries(before)
        if alerts or orphans:
            logger.info("alert history: deleted {} resolved alerts and {} other deliveries", alerts, orphans)
        return alerts, orphans
