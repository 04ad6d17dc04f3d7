"""The tamper-evident audit log: append-only events chained by SHA-256. UI-free.

Each event's `hash` is `sha256(prev_hash + canonical row)`, the canonical row being a JSON dump with
sorted keys of every field but `id` and `hash` (`ts` as an ISO string); the first event's
`prev_hash` is 64 zeros. Editing, inserting or deleting a stored row breaks the chain at that row,
which `verify` reports.

`record` appends inside the caller's session, so the event commits or rolls back with the change it
records; `record_now` is for events that change nothing else (a refused sign-in, a 403).

Retention: `archive` moves a prefix of the log to a JSON-lines file (rows exactly as `export("jsonl")`
writes them) and appends an `audit.archive` checkpoint naming the last archived row's id and hash.
The first row left in the database then links to that checkpoint instead of to the genesis hash, so
`verify` still passes; `verify_archive`/`verify_archives` check the files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, delete, func, select

from nox_ui.db import Database
from nox_ui.errors import Forbidden, Invalid, NoxError
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
ARCHIVE_ACTION = "audit.archive"
ARCHIVE_PREFIX = "audit-archive-"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad: int | None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int


class ArchiveError(NoxError):
    """The archive file could not be written (disk full, permissions); nothing was deleted.

    Not the caller's mistake and not a crash either: 503, with the reason in the message."""

    status_code = 503


@dataclass(frozen=True)
class Archived:
    """What `archive` did: `count` events moved to `path` (0 and None when nothing was old enough)."""

    count: int
    path: Path | None = None
    through_id: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    """An `audit.archive` event's promise: the events up to `through_id` ended in hash `through_hash`."""

    through_id: int
    through_hash: str
    event_id: int
    ts: str
    before: str
    count: int
    file: str


@dataclass(frozen=True)
class ArchiveCheck:
    """One archive file's verdict. `first_bad` names the event (None when a line is not an event at all)."""

    path: Path
    ok: bool
    checked: int
    first_bad: int | None = None
    reason: str = ""
    first_id: int | None = None
    last_id: int | None = None
    start_hash: str = ""
    end_hash: str = ""
    checkpoints: tuple[Checkpoint, ...] = field(default=(), repr=False)


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


def canonical_row(row: Mapping[str, Any]) -> str:
    """Every field of an exported row but `id` and `hash`, as sorted-key JSON: what the chain hashes."""
    body = {key: value for key, value in row.items() if key not in ("id", "hash")}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256((str(row["prev_hash"]) + canonical_row(row)).encode("utf-8")).hexdigest()


def canonical(event: AuditEvent) -> str:
    return canonical_row(as_row(event))


def chain_hash(event: AuditEvent) -> str:
    return row_hash(as_row(event))


def checkpoint_of(row: Mapping[str, Any]) -> Checkpoint | None:
    """The checkpoint a successful `audit.archive` row (an exported row) records, if it is one."""
    if row.get("action") != ARCHIVE_ACTION or row.get("outcome") != "success":
        return None
    try:
        details = json.loads(str(row.get("details", "")))
    except ValueError:
        return None
    if not isinstance(details, dict):
        return None
    through_id, through_hash = details.get("through_id"), details.get("through_hash")
    count = details.get("count")
    if not isinstance(through_id, int) or not isinstance(through_hash, str):
        return None
    return Checkpoint(
        through_id=through_id,
        through_hash=through_hash,
        event_id=int(row["id"]),
        ts=str(row.get("ts", "")),
        before=str(details.get("before", "")),
        count=count if isinstance(count, int) else 0,
        file=str(details.get("file", "")),
    )


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
        event = self._new_event(
            actor=actor,
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            details=json.dumps(redact(details or {}), sort_keys=True, ensure_ascii=False, default=str),
            ip=ip,
        )
        # Inserting first takes SQLite's write lock (held to the caller's commit), so every row with a
        # lower id is committed and no other connection can append before this one is done. The
        # thread lock is taken only after that, so it can never wait on a connection that waits on it.
        session.add(event)
        session.flush()
        with self._lock:
            self._link(session, event)
        return event

    @staticmethod
    def _new_event(
        *,
        actor: Principal | None,
        action: str,
        outcome: str,
        target_type: str = "",
        target_id: str | int = "",
        target_label: str = "",
        details: str = "{}",
        ip: str = "",
    ) -> AuditEvent:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        return AuditEvent(
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
            details=details,
            prev_hash=GENESIS,
            hash="",
        )

    @staticmethod
    def _link(session: Session, event: AuditEvent) -> None:
        """Chain an inserted (flushed) event to the row before it. Call with the write and thread locks held."""
        last = session.exec(
            select(AuditEvent.hash)
            .where(col(AuditEvent.id) < event.id)
            .order_by(col(AuditEvent.id).desc())
            .limit(1)
        ).first()
        event.prev_hash = last or GENESIS
        event.hash = chain_hash(event)
        session.flush()

    def authorize(
        self,
        actor: Principal,
        minimum: Role,
        *,
        attempted: str,
        target_type: str,
        target_id: str | int = "",
        target_label: str = "",
        ip: str = "",
    ) -> Principal:
        """`roles.authorize`, with a refusal recorded as `access.denied` before `Forbidden` goes up:
        the one way services check a role."""
        try:
            return authorize(actor, minimum)
        except Forbidden as exc:
            self.record_now(
                actor=actor,
                action="access.denied",
                outcome="denied",
                target_type=target_type,
                target_id=target_id,
                target_label=target_label[:256],
                details={"attempted": attempted, "reason": exc.message},
                ip=ip,
            )
            raise

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
        """Recompute the chain in id order; the first row whose link or hash does not match is named.

        The first row links to the genesis hash, or, once older events are archived, to the last
        archived row's hash that an `audit.archive` checkpoint still in the log vouches for."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        prev = GENESIS
        checked = 0
        for event in self._in_order():
            checked += 1
            linked = event.prev_hash == prev or self._resumes_after_archive(event)
            if not linked or chain_hash(event) != event.hash:
                return VerifyResult(ok=False, checked=checked, first_bad=event.id)
            prev = event.hash
        return VerifyResult(ok=True, checked=checked, first_bad=None)

    def _resumes_after_archive(self, event: AuditEvent) -> bool:
        """Whether `event` is now the oldest row and a checkpoint vouches for the hash it links to.

        Also true for a row whose predecessors an archive removed while `verify` was reading."""
        with self.db.session() as session:
            older = session.exec(select(AuditEvent.id).where(col(AuditEvent.id) < event.id).limit(1)).first()
            if older is not None:
                return False
            candidates = session.exec(
                select(AuditEvent).where(AuditEvent.action == ARCHIVE_ACTION, AuditEvent.outcome == "success")
            ).all()
        assert event.id is not None
        return any(
            point.through_hash == event.prev_hash and point.through_id < event.id
            for point in (checkpoint_of(as_row(candidate)) for candidate in candidates)
            if point is not None
        )

    def export(self, format: str = "csv", *, requester: Principal | None = None) -> Iterator[str]:
        """The whole log, oldest first, as CSV (with a header) or JSON lines; each item ends in a newline."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        if format not in ("csv", "jsonl"):
            raise Invalid(f"unknown export format {format!r} (choose csv or jsonl)")
        return self._export_csv() if format == "csv" else self._export_jsonl()

    def _export_jsonl(self) -> Iterator[str]:
        for event in self._in_order():
            yield jsonl_line(event)

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

    # -- retention ---------------------------------------------------------------------------------

    def archive(
        self, before: datetime, directory: Path, *, actor: Principal | None = None, ip: str = ""
    ) -> Archived:
        """Move every event older than `before` to a new JSON-lines file in `directory`.

        The rows moved are the ids up to the newest event older than `before` (a prefix, so the chain
        left behind stays contiguous). One transaction appends the `audit.archive` checkpoint, writes
        and fsyncs the file, deletes the rows and commits; on any failure nothing is deleted and the
        file is removed. Given an `actor` it is admin-only; without one it is the system acting (the
        CLI, a scheduler)."""
        if actor is not None:
            authorize(actor, Role.ADMIN)
        cutoff = before if before.tzinfo is not None else before.replace(tzinfo=UTC)
        with self.db.session() as session:
            marker = self._new_event(actor=actor, action=ARCHIVE_ACTION, outcome="success", ip=ip)
            # As in `record`: the insert takes SQLite's write lock first, so no event can be appended
            # (or archived) between choosing the rows and committing their deletion.
            session.add(marker)
            session.flush()
            with self._lock:
                through_id = session.exec(
                    select(func.max(AuditEvent.id)).where(
                        col(AuditEvent.ts) < cutoff, col(AuditEvent.id) < marker.id
                    )
                ).one()
                if through_id is None:
                    session.rollback()
                    return Archived(count=0)
                first_id = session.exec(select(func.min(AuditEvent.id))).one()
                name = f"{ARCHIVE_PREFIX}{first_id}-{through_id}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.jsonl"
                path = directory / name
                if path.exists():
                    raise ArchiveError(f"the audit archive {path} already exists")
                try:
                    count, through_hash, digest = self._write_archive(session, through_id, path)
                    # Not redacted: `through_hash` is a chain hash, the very value the check needs.
                    marker.details = json.dumps(
                        {
                            "before": cutoff.astimezone(UTC).isoformat(),
                            "count": count,
                            "file": name,
                            "file_sha256": digest,
                            "through_hash": through_hash,
                            "through_id": through_id,
                        },
                        sort_keys=True,
                    )
                    marker.target_type = "audit"
                    marker.target_id = f"{first_id}-{through_id}"
                    marker.target_label = name[:256]
                    self._link(session, marker)
                    session.exec(delete(AuditEvent).where(col(AuditEvent.id) <= through_id))
                    session.commit()
                except BaseException:
                    _remove(path)
                    raise
        return Archived(count=count, path=path, through_id=through_id)

    @staticmethod
    def _write_archive(session: Session, through_id: int, path: Path) -> tuple[int, str, str]:
        """Write the rows up to `through_id` to `path` (0600, fsynced, via a `.partial` file renamed
        into place); return how many, the last row's hash and the file's SHA-256."""
        partial = path.with_name(path.name + ".partial")
        digest = hashlib.sha256()
        count, last_hash = 0, GENESIS
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                after = 0
                while True:
                    batch = session.exec(
                        select(AuditEvent)
                        .where(col(AuditEvent.id) > after, col(AuditEvent.id) <= through_id)
                        .order_by(col(AuditEvent.id))
                        .limit(_BATCH)
                    ).all()
                    if not batch:
                        break
                    for event in batch:
                        line = jsonl_line(event).encode("utf-8")
                        handle.write(line)
                        digest.update(line)
                        session.expunge(event)
                    count += len(batch)
                    last_hash = batch[-1].hash
                    after = batch[-1].id or after
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
            _fsync_directory(path.parent)
        except OSError as exc:
            raise ArchiveError(f"cannot write the audit archive {path}: {exc.strerror or exc}") from exc
        finally:
            _remove(partial)
        return count, last_hash, digest.hexdigest()

    def checkpoints(self, *, requester: Principal | None = None) -> list[Checkpoint]:
        """The archive checkpoints still in the log, oldest first."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        with self.db.session() as session:
            events = session.exec(
                select(AuditEvent)
                .where(AuditEvent.action == ARCHIVE_ACTION, AuditEvent.outcome == "success")
                .order_by(col(AuditEvent.id))
            ).all()
        return [point for point in (checkpoint_of(as_row(event)) for event in events) if point is not None]

    def verify_archives(
        self, paths: Iterable[Path], *, requester: Principal | None = None
    ) -> list[ArchiveCheck]:
        """Check each file by itself, then that its last event is vouched for by a checkpoint in the log
        or in another given file that is itself vouched for. Run `verify` too: it vouches for the log."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        checks = [verify_archive(path) for path in paths]
        trusted = {(p.through_id, p.through_hash) for p in self.checkpoints()}
        vouched: set[int] = set()
        grew = True
        while grew:
            grew = False
            for index, check in enumerate(checks):
                if check.ok and index not in vouched and (check.last_id, check.end_hash) in trusted:
                    vouched.add(index)
                    trusted |= {(p.through_id, p.through_hash) for p in check.checkpoints}
                    grew = True
        return [
            check
            if not check.ok or index in vouched
            else replace(
                check,
                ok=False,
                first_bad=check.last_id,
                reason=(
                    f"event {check.last_id}: no audit.archive checkpoint in the log or in the other "
                    "files given vouches for it"
                ),
            )
            for index, check in enumerate(checks)
        ]


def verify_archive(path: Path) -> ArchiveCheck:
    """An archive file by itself: every line an exported event, ids rising, each hash recomputing and
    each `prev_hash` the hash of the line before. The first line's `prev_hash` is genesis or the last
    hash of the previous archive; `start_hash` and `end_hash` report both ends."""
    checked = 0
    first_id: int | None = None
    start_hash = ""
    prev: dict[str, Any] | None = None
    points: list[Checkpoint] = []

    def bad(first_bad: int | None, reason: str) -> ArchiveCheck:
        return ArchiveCheck(path=path, ok=False, checked=checked, first_bad=first_bad, reason=reason)

    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                checked += 1
                row = _parse_row(line)
                if row is None:
                    return bad(None, f"line {number} is not an exported audit event")
                event_id = row["id"]
                if prev is not None and event_id <= prev["id"]:
                    return bad(event_id, f"event {event_id} comes after event {prev['id']}")
                if prev is not None and row["prev_hash"] != prev["hash"]:
                    return bad(event_id, f"event {event_id} does not link to event {prev['id']}")
                if row_hash(row) != row["hash"]:
                    return bad(event_id, f"event {event_id} does not match its hash")
                point = checkpoint_of(row)
                if point is not None:
                    points.append(point)
                if first_id is None:
                    first_id, start_hash = event_id, row["prev_hash"]
                prev = row
    except (OSError, UnicodeDecodeError) as exc:
        return bad(None, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    if prev is None:
        return bad(None, "no events in the file")
    return ArchiveCheck(
        path=path,
        ok=True,
        checked=checked,
        first_id=first_id,
        last_id=prev["id"],
        start_hash=start_hash,
        end_hash=prev["hash"],
        checkpoints=tuple(points),
    )


def _parse_row(line: str) -> dict[str, Any] | None:
    """An exported row with exactly the export fields, an integer id and string hashes; else None."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or set(row) != set(EXPORT_FIELDS):
        return None
    if not isinstance(row["id"], int) or isinstance(row["id"], bool):
        return None
    if not isinstance(row["prev_hash"], str) or not isinstance(row["hash"], str):
        return None
    return row


def _remove(path: Path) -> None:
    """Delete a file of a failed archive, if it is there and can be."""
    with contextlib.suppress(OSError):
        path.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def jsonl_line(event: AuditEvent) -> str:
    """One event as `export("jsonl")` and the archive files write it."""
    return json.dumps(as_row(event), ensure_ascii=False) + "\n"


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
