"""What the engine writes, behind a small interface: the engine never touches a session itself.

`AlertStore` is the few writes (and the one read, at restore) evaluation needs; `SqlAlertStore` is the
one implementation, on the `alerts` table. Pending episodes are never stored (they live in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import update
from sqlmodel import col, select

from nox_ui.alerts.state import AlertState
from nox_ui.db import Database
from nox_ui.models import Alert


@dataclass(frozen=True)
class FiredEpisode:
    """An episode that has just fired: the row written for it."""

    rule_id: int
    series: str
    labels: dict[str, str]
    severity: str
    value: float | None
    threshold: float
    pending_since: datetime
    fired_at: datetime
    last_notified_at: datetime | None


@dataclass(frozen=True)
class StoredFiring:
    """A firing episode as stored, for `AlertEngine.restore`."""

    id: int
    rule_id: int
    series: str
    value: float | None
    pending_since: datetime
    fired_at: datetime
    last_notified_at: datetime | None
    acked_by: str | None


class AlertStore(Protocol):
    def insert_firing(self, episode: FiredEpisode) -> int:
        """Store a fired episode; its id."""
        ...

    def mark_notified(self, alert_id: int, at: datetime) -> None: ...

    def resolve(self, alert_id: int, at: datetime, value: float | None) -> None: ...

    def firing(self) -> list[StoredFiring]:
        """Every firing episode, newest first."""
        ...

    def resolve_stale(self, alert_ids: Sequence[int], at: datetime) -> None:
        """Resolve episodes whose rule is gone or changed (no message)."""
        ...


class SqlAlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert_firing(self, episode: FiredEpisode) -> int:
        row = Alert(
            rule_id=episode.rule_id,
            series=episode.series,
            labels=episode.labels,
            state=AlertState.FIRING,
            severity=episode.severity,
            value=episode.value,
            threshold=episode.threshold,
            pending_since=episode.pending_since,
            fired_at=episode.fired_at,
            last_notified_at=episode.last_notified_at,
        )
        with self.db.session() as session:
            session.add(row)
            session.commit()
        assert row.id is not None
        return row.id

    def mark_notified(self, alert_id: int, at: datetime) -> None:
        with self.db.session() as session:
            session.execute(update(Alert).where(col(Alert.id) == alert_id).values(last_notified_at=at))
            session.commit()

    def resolve(self, alert_id: int, at: datetime, value: float | None) -> None:
        with self.db.session() as session:
            session.execute(
                update(Alert)
                .where(col(Alert.id) == alert_id)
                .values(state=AlertState.RESOLVED, resolved_at=at, value=value)
            )
            session.commit()

    def firing(self) -> list[StoredFiring]:
        with self.db.session() as session:
            rows = session.exec(
                select(Alert).where(Alert.state == AlertState.FIRING).order_by(col(Alert.fired_at).desc())
            ).all()
        return [
            StoredFiring(
                id=row.id or 0,
                rule_id=row.rule_id,
                series=row.series,
                value=row.value,
                pending_since=row.pending_since,
                fired_at=row.fired_at,
                last_notified_at=row.last_notified_at,
                acked_by=row.acked_by,
            )
            for row in rows
        ]

    def resolve_stale(self, alert_ids: Sequence[int], at: datetime) -> None:
        with self.db.session() as session:
            session.execute(
                update(Alert)
                .where(col(Alert.id).in_(list(alert_ids)))
                .values(state=AlertState.RESOLVED, resolved_at=at)
            )
            session.commit()
