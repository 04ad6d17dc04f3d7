"""Automatic audit retention: `audit_retention_days` archives old events and the chain still verifies."""

from __future__ import annotations

from datetime import timedelta

from nox_ui.app import Services
from nox_ui.models import utcnow
from nox_ui.services.audit import verify_archive


def test_retention_off_by_default_keeps_everything(accounts: Services) -> None:
    before = accounts.audit.query(limit=1).total
    assert accounts.config.current.audit_retention_days == 0
    assert accounts.audit_retention.run_once(utcnow() + timedelta(days=3650)) is None
    assert accounts.audit.query(limit=1).total == before


def test_retention_archives_events_older_than_the_setting_and_the_chain_verifies(accounts: Services) -> None:
    old_events = accounts.audit.query(limit=1).total
    assert old_events > 0  # the fixture's account creations
    accounts.config.update(None, {"audit_retention_days": 30})
    # 31 days later, everything recorded so far (the settings change included) is old enough
    archived = accounts.audit_retention.run_once(utcnow() + timedelta(days=31))
    assert archived is not None and archived.count == old_events + 1
    assert archived.path is not None and archived.path.parent == accounts.settings.data_dir / "backups"
    assert verify_archive(archived.path).ok
    remaining = accounts.audit.query(limit=10).events
    assert [e.action for e in remaining] == ["audit.archive"]
    assert accounts.audit.verify().ok
    # a second run has nothing newer than the checkpoint to move
    again = accounts.audit_retention.run_once(utcnow() + timedelta(days=31))
    assert again is not None and again.count <= 1
    assert accounts.audit.verify().ok
