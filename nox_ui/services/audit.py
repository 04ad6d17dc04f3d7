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

The head: the chain cannot show its newest rows being deleted, nor a chain recomputed by someone who
can write the database. Built with an `AuditHead` (see audit_head.py), the service keeps the newest
event's id and hash and the count of events up to it in a signed file outside the database, moves it
forward after each commit (never backwards, and never past an anchored event that is gone or
changed), and `verify` names truncation, a rewritten chain, a forged or missing head.
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

from loguru import logger
from sqlalchemy import event as orm_event
from sqlalchemy import or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, delete, func, literal, select

from nox_ui import roles
from nox_ui.db import Database
from nox_ui.durable import fsync_directory
from nox_ui.errors import Invalid, NoxError
from nox_ui.models import AuditEvent, User, utcnow
from nox_ui.roles import SYSTEM_NAME, Principal, Role, Target, authorize
from nox_ui.services.audit_head import AuditHead, Head, HeadUnreadable, PendingArchive

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
ANCHOR_ACTION = "audit.anchor"
# Session flags: events recorded but not committed yet; committed, for the head to take in.
_UNANCHORED = "nox_audit_unanchored"
_COMMITTED = "nox_audit_committed"
_HOOKED = "nox_audit_head_hook"
# Times `verify` re-reads a head that moved while it compared (an archive or append in between).
_HEAD_RETRIES = 5


@dataclass(frozen=True)
class VerifyResult:
    """`first_bad` names the broken event (for a head problem, the anchored one) or is None; `reason`
    says what is wrong in one line."""

    ok: bool
    checked: int
    first_bad: int | None
    reason: str = field(default="", compare=False)


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


@dataclass(frozen=True)
class _Snapshot:
    """What the table says about a head, read in one statement (so one consistent view)."""

    newest_id: int | None
    newest_hash: str | None
    anchored_hash: str | None
    marker_hash: str | None
    count_through: int
    count_after: int


class AuditService:
    def __init__(self, db: Database, head: AuditHead | None = None) -> None:
        self.db = db
        self.head = head
        # Reading the last hash and inserting the next row must not interleave between threads.
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @classmethod
    def with_head(
        cls, db: Database, data_dir: Path, secret_key: str, previous_keys: Iterable[str | None] = ()
    ) -> AuditService:
        """The service as the panel runs it: the head in `data_dir`, signed under `secret_key`
        (`previous_keys` still verify, during a key rotation), created or anchored at start."""
        service = cls(db, AuditHead(data_dir, secret_key, list(previous_keys)))
        service.anchor_on_start()
        return service

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
        if self.head is not None:
            self._anchor_after_commit(session)
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
            actor_id=None if actor is None or actor.is_system else actor.user_id,
            actor_name=(actor.username if actor is not None else SYSTEM_NAME)[:64],
            actor_role=SYSTEM_NAME if actor is None or actor.is_system else actor.role.value,
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
        """`roles.check` with this log recording a refusal: how services check a role."""
        return roles.check(
            actor,
            minimum,
            Target(target_type, target_id, target_label),
            audit=self,
            attempted=attempted,
            ip=ip,
        )

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
        event_id: int | None = None,
    ) -> AuditPage:
        """Newest first. `action` matches itself and its dotted children (`auth.login` finds both outcomes);
        `event_id` keeps that one event (a search hit's link)."""
        if requester is not None:
            authorize(requester, Role.ADMIN)
        if not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise Invalid("offset must not be negative")
        if outcome and outcome not in OUTCOMES:
            raise Invalid(f"unknown outcome {outcome!r} (choose one of: {', '.join(OUTCOMES)})")
        conditions: list[Any] = []
        if event_id is not None:
            conditions.append(col(AuditEvent.id) == event_id)
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
                wrong = "does not link to the event before it" if not linked else "does not match its hash"
                return VerifyResult(
                    ok=False,
                    checked=checked,
                    first_bad=event.id,
                    reason=f"event {event.id} {wrong} ({checked - 1} events before it verify)",
                )
            prev = event.hash
        problem = self._head_problem() if self.head is not None else None
        if problem is not None:
            return VerifyResult(ok=False, checked=checked, first_bad=problem[0], reason=problem[1])
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

    # -- the head ---------------------------------------------------------------------------------

    def _anchor_after_commit(self, session: Session) -> None:
        """Move the head once `session` commits the event just recorded (nothing if it rolls back)."""
        session.info[_UNANCHORED] = True
        if not session.info.get(_HOOKED):
            session.info[_HOOKED] = True
            orm_event.listen(session, "after_commit", _committed)
            orm_event.listen(session, "after_rollback", _rolled_back)
            orm_event.listen(session, "after_transaction_end", self._after_transaction_end)

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # Here, not in after_commit: by now the session has given its connection back to the pool,
        # so a burst of writers cannot exhaust the pool waiting for a second connection each.
        if transaction.parent is None and session.info.pop(_COMMITTED, False):
            self._advance_logged()

    def _advance_logged(self) -> None:
        """Move the head forward; a failure is logged, never raised: the event itself is committed."""
        try:
            self._advance()
        except Exception:
            logger.exception("audit head {} not updated", self._head().path)

    def _head(self) -> AuditHead:
        if self.head is None:
            raise RuntimeError("this audit service keeps no head")
        return self.head

    def _advance(self) -> None:
        head_file = self._head()
        with head_file.locked():
            try:
                head = head_file.read()
            except HeadUnreadable as exc:
                self._warn_once(
                    f"audit head not updated: {exc.message}; `nox-ui audit verify` fails until it is fixed"
                )
                return
            self._advance_locked(head)

    def _advance_locked(self, head: Head) -> Head:
        """Anchor the newest committed event, provided the anchored one is still there with its hash (or
        was moved by the archive the head announces). Otherwise the head stays, as evidence. Call with
        the head's lock held."""
        snap = self._snapshot(head, through=head.archive is not None)
        if snap.newest_id is None or snap.newest_id <= head.last_id:
            return head
        pending = head.archive
        effective = pending is not None and snap.marker_hash == pending.marker_hash
        if not _continues(head, snap, effective):
            self._warn_once(
                f"audit head not moved past event #{head.last_id}: that anchored event is missing or "
                "changed in the database; `nox-ui audit verify` names the problem"
            )
            return head
        if effective:
            count, pending = snap.count_through + snap.count_after, None
        else:
            count = head.count + snap.count_after
            if pending is not None and snap.newest_id >= pending.marker_id:
                pending = None  # that archive rolled back: its id went to another event
        moved = Head(last_id=snap.newest_id, last_hash=snap.newest_hash or "", count=count, archive=pending)
        self._head().write(moved)
        return moved

    def _snapshot(self, head: Head, *, through: bool) -> _Snapshot:
        """The newest event, the anchored one, the announced archive's marker and the counts before and
        after the head, in one statement. `through=False` skips the (table-long) count up to the head."""
        ids = col(AuditEvent.id)
        newest = select(func.max(AuditEvent.id)).scalar_subquery()
        marker_id = head.archive.marker_id if head.archive is not None else -1
        counted = select(func.count()).select_from(AuditEvent)
        # SQLAlchemy's own select: sqlmodel's is typed for at most four columns.
        statement = sa_select(
            newest,
            select(AuditEvent.hash).where(ids == newest).scalar_subquery(),
            select(AuditEvent.hash).where(ids == head.last_id).scalar_subquery(),
            select(AuditEvent.hash).where(ids == marker_id).scalar_subquery(),
            counted.where(ids <= head.last_id).scalar_subquery() if through else literal(0),
            counted.where(ids > head.last_id).scalar_subquery(),
        )
        with self.db.session() as session:
            row = session.execute(statement).one()
        return _Snapshot(
            newest_id=row[0],
            newest_hash=row[1],
            anchored_hash=row[2],
            marker_hash=row[3],
            count_through=int(row[4] or 0),
            count_after=int(row[5] or 0),
        )

    def _current_head(self) -> Head:
        """The newest event and the count of all events, as a head."""
        snap = self._snapshot(Head(last_id=0, last_hash=GENESIS, count=0), through=False)
        if snap.newest_id is None:
            return Head(last_id=0, last_hash=GENESIS, count=0)
        return Head(last_id=snap.newest_id, last_hash=snap.newest_hash or "", count=snap.count_after)

    def _head_problem(self) -> tuple[int | None, str] | None:
        """What is wrong with the log against its anchored head, or None. A head that moved while it was
        compared (an archive or an append in between) is read again."""
        head_file = self._head()
        problem: tuple[int | None, str] | None = None
        compared: Head | None = None
        for _ in range(_HEAD_RETRIES):
            try:
                head = head_file.read()
            except HeadUnreadable as exc:
                return self._unreadable_head_problem(exc)
            if head == compared:
                break
            problem = _compare(head, self._snapshot(head, through=True))
            if problem is None:
                return None
            compared = head
        return problem

    def _unreadable_head_problem(self, exc: HeadUnreadable) -> tuple[int | None, str] | None:
        if exc.kind != "missing":
            return None, exc.message
        events = self._current_head().count
        if events == 0:
            return None
        return None, (
            f"{exc.message}, but the log holds {_events(events)}: deleting the newest ones cannot be ruled "
            "out (restore the file from a backup, or re-anchor the log after checking it: "
            "nox-ui audit reanchor)"
        )

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.error(message)

    def _announce_archive(self, pending: PendingArchive) -> None:
        """Bring the head up to date and sign `pending` into it, before the archive commits."""
        head_file = self._head()
        try:
            with head_file.locked():
                try:
                    head = head_file.read()
                except HeadUnreadable as exc:
                    self._warn_once(f"audit head not updated for an archive: {exc.message}")
                    return
                head = self._advance_locked(head)
                head_file.write(replace(head, archive=pending))
        except OSError as exc:
            raise ArchiveError(
                f"cannot record the archive in the audit head {head_file.path}: {exc.strerror or exc}"
            ) from exc

    def _withdraw_archive(self, pending: PendingArchive) -> None:
        """Take back an announced archive that did not commit."""
        head_file = self._head()
        try:
            with head_file.locked():
                head = head_file.read()
                if head.archive == pending:
                    head_file.write(replace(head, archive=None))
        except (HeadUnreadable, OSError):
            logger.exception("audit head {}: a failed archive could not be withdrawn", head_file.path)

    def anchor_on_start(self) -> None:
        """Create the head of a new log; anchor a log that never had one (an upgrade: logged and recorded
        as an `audit.anchor` event). A head deleted after it was written is not recreated: `verify`
        keeps failing until it is restored or `reanchor` is run."""
        head_file = self._head()
        anchored: Head | None = None
        with head_file.locked():
            if head_file.exists():
                return
            if head_file.was_written():
                return  # deleted: `verify` says so, and the first event's head update logs it
            current = self._current_head()
            head_file.write(current)
            if current.last_id:
                anchored = current
        if anchored is not None:
            logger.warning(
                "audit log: no head file yet (first start of a version that anchors the log); anchored the "
                "existing {} events at event #{} in {}",
                anchored.count,
                anchored.last_id,
                head_file.path,
            )
            self.record_now(
                actor=roles.PANEL,
                action=ANCHOR_ACTION,
                outcome="success",
                target_type="audit",
                target_id=anchored.last_id,
                details={"reason": "first anchored start", "events": anchored.count},
            )

    def reanchor(self, actor: Principal, *, reason: str = "", ip: str = "") -> Head:
        """Anchor the log as it is now, replacing a missing, forged or stuck head; recorded as an
        `audit.anchor` event naming the head it replaced. For after an incident has been looked into:
        from now on, deletions before this point are no longer detected. Admin only (the CLI acts as
        `roles.CLI`)."""
        authorize(actor, Role.ADMIN)
        head_file = self._head()
        with head_file.locked():
            try:
                old = head_file.read()
                replaced: dict[str, Any] = {"previous_head": old.last_id, "previous_count": old.count}
            except HeadUnreadable as exc:
                replaced = {"previous_head": exc.kind}
            current = self._current_head()
            head_file.write(current)
        self.record_now(
            actor=actor,
            action=ANCHOR_ACTION,
            outcome="success",
            target_type="audit",
            target_id=current.last_id,
            details={
                "reason": reason or "re-anchored by an administrator",
                "events": current.count,
                **replaced,
            },
            ip=ip,
        )
        return current

    def resign_head(self, new_secret_key: str, *, previous_keys: Iterable[str] = ()) -> bool:
        """Sign the head again under `new_secret_key` (for `nox-ui secrets rotate`), which this service
        signs with from then on. The head must verify under a key this service holds or one of
        `previous_keys` (the old key, when the new one already came from NOX_SECRET_KEY); a forged head
        is never re-signed (`HeadUnreadable`, a 409). False when there is no head file to re-sign
        (`verify` reports that by itself)."""
        head_file = self._head()
        with head_file.locked():
            try:
                head = head_file.read(also=previous_keys)
            except HeadUnreadable as exc:
                if exc.kind == "missing":
                    head_file.rekey(new_secret_key)
                    return False
                raise
            head_file.rekey(new_secret_key)
            head_file.write(head)
        return True

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

    def archive(self, actor: Principal, before: datetime, directory: Path, *, ip: str = "") -> Archived:
        """Move every event older than `before` to a new JSON-lines file in `directory`.

        The rows moved are the ids up to the newest event older than `before` (a prefix, so the chain
        left behind stays contiguous). One transaction appends the `audit.archive` checkpoint, writes
        and fsyncs the file, deletes the rows and commits; on any failure nothing is deleted and the
        file is removed. Admin only (the CLI acts as `roles.CLI`, the scheduled retention as
        `roles.PANEL`)."""
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
                pending: PendingArchive | None = None
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
                    if self.head is not None:
                        assert marker.id is not None
                        pending = PendingArchive(marker.id, marker.hash, through_id, through_hash, count)
                        self._announce_archive(pending)
                    session.commit()
                except BaseException:
                    _remove(path)
                    if pending is not None:
                        self._withdraw_archive(pending)
                    raise
        if self.head is not None:
            self._advance_logged()
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
            fsync_directory(path.parent)
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


def _committed(session: Session) -> None:
    if session.info.pop(_UNANCHORED, False):
        session.info[_COMMITTED] = True


def _rolled_back(session: Session) -> None:
    session.info.pop(_UNANCHORED, None)


def _continues(head: Head, snap: _Snapshot, effective: bool) -> bool:
    """Whether the log still holds the anchored event with its hash, or the announced (and committed)
    archive moved it."""
    if head.last_id == 0 or snap.anchored_hash == head.last_hash:
        return True
    pending = head.archive
    if not effective or pending is None or head.last_id > pending.through_id:
        return False
    return head.last_id < pending.through_id or pending.through_hash == head.last_hash


def _events(count: int) -> str:
    return "1 event" if count == 1 else f"{count} events"


def _compare(head: Head, snap: _Snapshot) -> tuple[int | None, str] | None:
    """The log against its head: (the event to name or None, what is wrong), or None when they agree.

    Events after the head are fine (a crash between a commit and the head's update leaves it behind);
    they chain from the anchored event, which the chain walk checks."""
    pending = head.archive
    effective = pending is not None and snap.marker_hash == pending.marker_hash
    if pending is not None and effective:
        anchor_moved = head.last_id <= pending.through_id
        expected = 0 if anchor_moved else head.count - pending.count
    else:
        anchor_moved, expected = False, head.count
    anchor = f"event #{head.last_id} with hash {head.last_hash}"
    if head.last_id and not anchor_moved:
        if snap.anchored_hash is None:
            if snap.newest_id is None or snap.newest_id < head.last_id:
                missing = expected - snap.count_through
                newest = (
                    "the newest event is"
                    if missing == 1
                    else f"the newest {missing} events are"
                    if missing > 1
                    else "the newest events are"
                )
                ends = "the log is empty" if snap.newest_id is None else f"the log ends at #{snap.newest_id}"
                return head.last_id, f"{newest} missing: the anchored head is {anchor}, {ends}"
            return head.last_id, f"the anchored head, {anchor}, is missing from the log"
        if snap.anchored_hash != head.last_hash:
            return head.last_id, (
                f"event #{head.last_id} has hash {snap.anchored_hash}, but the anchored head says "
                f"{head.last_hash}: the chain was rewritten"
            )
    if snap.count_through != expected:
        difference = expected - snap.count_through
        what = f"{_events(difference)} missing" if difference > 0 else f"{_events(-difference)} too many"
        return None, (
            f"{what} up to the anchored head #{head.last_id}: the head counts {expected}, "
            f"the log holds {snap.count_through}"
        )
    return None


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
