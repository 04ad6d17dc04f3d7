"""Housekeeping: what the panel keeps, and for how long, checked once an hour by `nox-ui serve`.

- Audit events older than `audit_retention_days` are archived to DATA_DIR/backups; the archive keeps
  the chain verifiable (see `AuditService.archive`). 0 keeps every event in the database.
- Resolved alerts older than `alert_history_days` are deleted with their delivery logs, and so are
  old notifier test deliveries (`nox_ui/alerts/retention.py`). 0 keeps them all.

A changed setting acts within the hour. The loop is the supervisor's job "housekeeping": a round in
which a job failed reports the failure (the next round, an hour later, tries again), a crash of the
loop itself restarts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from nox_ui.models import utcnow
from nox_ui.roles import PANEL
from nox_ui.services.audit import Archived, AuditService
from nox_ui.services.settings import SettingsService
from nox_ui.supervisor import Supervisor

JOB = "housekeeping"


class AuditRetention:
    def __init__(self, audit: AuditService, config: SettingsService, directory: Path) -> None:
        self.audit = audit
        self.config = config
        self.directory = directory

    def run_once(self, now: datetime | None = None) -> Archived | None:
        """Archive what is older than the retention; None when retention is off."""
        days = self.config.current.audit_retention_days
        if days <= 0:
            return None
        archived = self.audit.archive(PANEL, (now or utcnow()) - timedelta(days=days), self.directory)
        if archived.count:
            logger.info("audit retention: archived {} events to {}", archived.count, archived.path)
        return archived


class Housekeeping:
    """Runs every job at start and then once an hour; a job that fails (disk full, database busy) is
    logged and tried again the next hour, and the others still run."""

    def __init__(
        self,
        jobs: list[Callable[[], object]],
        *,
        every_seconds: float = 3600,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.jobs = jobs
        self.every_seconds = every_seconds
        self.supervisor = supervisor or Supervisor()

    def start(self) -> None:
        """Run `run` under the supervisor, on the running event loop (idempotent)."""
        self.supervisor.task(JOB, self.run)

    async def stop(self) -> None:
        await self.supervisor.stop(JOB)

    async def run(self) -> None:
        while True:
            failed = False
            for job in self.jobs:
                try:
                    await asyncio.to_thread(job)
                except Exception as exc:  # the others still run; this one runs again next round
                    logger.warning("housekeeping: {} failed; it runs again in an hour", _name_of(job))
                    self.supervisor.report(JOB, exc)
                    failed = True
            if not failed:
                self.supervisor.report(JOB, None)
            await asyncio.sleep(self.every_seconds)


def _name_of(job: Callable[[], object]) -> str:
    return getattr(job, "__qualname__", None) or repr(job)
