"""The tamper-evident audit log: append-only events chained by SHA-256. UI-free.

Each event's `hash` is `sha256(prev_hash + canonical row)`, the canonical row being a JSON dump with
sorted keys of every field but `id` and `hash` (`ts` as an ISO string); the first event's
`prev_hash` is 64 zeros. Editing, inserting or deleting a stored row breaks the chain at that row,
which `verify` reports.

`record` appends inside the caller's session, so the event commits or rolls back with the change it
records; `record_now` is for events that change nothing else (a refused sign-in, a 403).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from nox_ui.db import Database
from nox_ui.errors import Invalid
from nox_ui.models import AuditEvent, User, utcnow
from nox_ui.roles import Principal, Role, authorize

GENESIS = "0" * 64
OUTCOMES = ("success", "failure", "denied")
REDACTED = "[redacted]"
SECRET_MARKERS = ("password", "secret", "token", "hash")
MAX_LIMIT = 1000
EXPORT_FIELDS = (
    "id",
    "ts",
    "actor_id",
    "actor_name",
    "actor_role",
    "source_ip",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "outcome",
    "details",
    "prev_hash",
    "hash",
)
_BATCH = 500


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad: int | None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int


def redact(value: Any) -> Any:
    """Replace the value of every key that names a secret, at any depth."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if any(m in str(k).lower() for m in SECRET_MARKERS) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def canonical(event: AuditEvent) -> str:
    """Every field but `id` and `hash`, as sorted-key JSON: what the chain hashes."""
    row = {key: value for key, value in as_row(event).items() if key not in ("id", "hash")}
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chain_hash(event: AuditEvent) -> str:
    return hashlib.sha256((event.prev_hash + canonical(event)).encode("utf-8")).hexdigest()


def actor_of(user: User, via: str = "session") -> Principal:
    """A principal for a user the service has in hand (a sign-in, a sign-out)."""
    assert user.id is not None
    return Principal(
        user_id=user.id, username=user.username, role=Role(user.role), display_name=user.display_name, via=via
    )


def as_datetime(value: datetime | float | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Reading the last hash and inserting the next row must not interleave between threads.
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------------

    def record(
        self,
        session: Session,
        *,
        actor: Principal | None,
        action: str,
        outcome: str,
        target_type: str = "",
        target_id: str | int = "",
        target_label: str = "",
        details: dict[str, Any] | None = None,
        ip: str = "",
    ) -> AuditEvent:
        """Append an event within the caller's session; it commits or rolls back with the caller's change."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        event = AuditEvent(
            ts=utcnow(),
            actor_id=actor.user_id if actor else None,
            actor_name=(actor.username if actor else "system")[:64],
            actor_role=actor.role.value if actor else "system",
            source_ip=(ip or "")[:64],
            action=action[:64],
            target_type=target_type[:32],
            target_id=str(target_id)[:128],
            target_label=target_label[:256],
            outcome=outcome,
            details=json.dumps(redact(details or {}), sort_keys=True, ensure_ascii=False, default=str),
            prev_hash=GENESIS,
            hash="",
        )
        # Inserting first takes SQLite's write lock (held to the caller's commit), so every row with a
        # lower id is committed and no other connection can append before this one is done. The
        # thread lock is taken only after that, so it can never wait on a connection that waits on it.
        session.add(event)
        session.flush()
        with self._lock:
            last = session.exec(
                select(AuditEvent.hash)
                .where(col(AuditEvent.id) < event.id)
                .order_by(col(AuditEvent.id).desc())
                .limit(1)
            ).first()
            event.prev_hash = last or GENESIS
            event.hash = chain_hash(event)
            session.flush()
        return event

    def record_now(self, **kwargs: Any) -> AuditEvent:
        """Append an event in a transaction of its own (for events that change nothing else)."""
        with self.db.session() as session:
            event = self.record(session, **kwargs)
            session.commit()
        return event

    # -- reading -----------------------------------------------------------------------------------

    def query(
        self,
        *,
        requester: Principal | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        q: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> AuditPage:
        """Newest first. `action` matches itself and its dotted children (`auth.login` finds both outcomes)."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        if not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise Invalid("offset must not be negative")
        if outcome and outcome not in OUTCOMES:
            raise Invalid(f"unknown outcome {outcome!r} (choose one of: {', '.join(OUTCOMES)})")
        conditions: list[Any] = []
        if actor:
            conditions.append(func.lower(AuditEvent.actor_name) == actor.strip().lower())
        if action:
            action = action.strip()
            conditions.append(
                or_(col(AuditEvent.action) == action, col(AuditEvent.action).like(f"{action}.%"))
            )
        if outcome:
            conditions.append(AuditEvent.outcome == outcome)
        start, end = as_datetime(since), as_datetime(until)
        if start is not None:
            conditions.append(col(AuditEvent.ts) >= start)
        if end is not None:
            conditions.append(col(AuditEvent.ts) <= end)
        if q and q.strip():
            pattern = f"%{q.strip().lower()}%"
            conditions.append(
                or_(
                    *(
                        func.lower(column).like(pattern)
                        for column in (
                            AuditEvent.actor_name,
                            AuditEvent.action,
                            AuditEvent.target_type,
                            AuditEvent.target_id,
                            AuditEvent.target_label,
                            AuditEvent.details,
                            AuditEvent.source_ip,
                        )
                    )
                )
            )
        with self.db.session() as session:
            total = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
            events = session.exec(
                select(AuditEvent)
                .where(*conditions)
                .order_by(col(AuditEvent.id).desc())
                .offset(offset)
                .limit(limit)
            ).all()
        return AuditPage(events=list(events), total=total)

    def _in_order(self) -> Iterator[AuditEvent]:
        """Every event by id, read in batches (each in its own short session)."""
        after = 0
        while True:
            with self.db.session() as session:
                batch = session.exec(
                    select(AuditEvent)
                    .where(col(AuditEvent.id) > after)
                    .order_by(col(AuditEvent.id))
                    .limit(_BATCH)
                ).all()
            if not batch:
                return
            yield from batch
            after = batch[-1].id or after

    def verify(self, *, requester: Principal | None = None) -> VerifyResult:
        """Recompute the chain in id order; the first row whose link or hash does not match is named."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        prev = GENESIS
        checked = 0
        for event in self._in_order():
            checked += 1
            if event.prev_hash != prev or chain_hash(event) != event.hash:
                return VerifyResult(ok=False, checked=checked, first_bad=event.id)
            prev = event.hash
        return VerifyResult(ok=True, checked=checked, first_bad=None)

    def export(self, format: str = "csv", *, requester: Principal | None = None) -> Iterator[str]:
        """The whole log, oldest first, as CSV (with a header) or JSON lines; each item ends in a newline."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        if format not in ("csv", "jsonl"):
            raise Invalid(f"unknown export format {format!r} (choose csv or jsonl)")
        return self._export_csv() if format == "csv" else self._export_jsonl()

    def _export_jsonl(self) -> Iterator[str]:
        for event in self._in_order():
            yield json.dumps(as_row(event), ensure_ascii=False) + "\n"

    def _export_csv(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        yield buffer.getvalue()
        for event in self._in_order():
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(as_row(event))
            yield buffer.getvalue()


def as_row(event: AuditEvent) -> dict[str, Any]:
    """An event as plain JSON-ready values (details stays the stored JSON text)."""
    return {
        "id": event.id,
        "ts": event.ts.astimezone(UTC).isoformat(),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "actor_role": event.actor_role,
        "source_ip": event.source_ip,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "outcome": event.outcome,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
