"""Audit retention: events older than `audit_retention_days` are archived to DATA_DIR/backups.

The archive keeps the chain verifiable (see `AuditService.archive`); 0 days keeps every event in
the database. Checked once an hour by `nox-ui serve`, so a changed setting acts within the hour.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from nox_ui.models import utcnow
from nox_ui.services.audit import Archived, AuditService
from nox_ui.services.settings import SettingsService


class AuditRetention:
    def __init__(
        self, audit: AuditService, config: SettingsService, directory: Path, *, every_seconds: float = 3600
    ) -> None:
        self.audit = audit
        self.config = config
        self.directory = directory
        self.every_seconds = every_seconds

    def run_once(self, now: datetime | None = None) -> Archived | None:
        """Archive what is older than the retention; None when retention is off."""
        days = self.config.current.audit_retention_days
        if days <= 0:
            return None
        archived = self.audit.archive((now or utcnow()) - timedelta(days=days), self.directory)
        if archived.count:
            logger.info("audit retention: archived {} events to {}", archived.count, archived.path)
        return archived

    async def run(self) -> None:
        """The hourly loop; a failed run (disk full) is logged and tried again an hour later."""
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                logger.exception("audit retention failed; the events stay in the database")
            await asyncio.sleep(self.every_seconds)
