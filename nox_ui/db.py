"""Engine and sessions. SQLite gets WAL, foreign keys, a busy timeout and synchronous=FULL
so an acknowledged write survives kill -9; any other SQLAlchemy URL is used as given."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from nox_ui.errors import StorageFull, database_busy, disk_full

T = TypeVar("T")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _full_disk_is_storage_full)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class Database:
    """Owns the engine; hands out short-lived sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Told of a full disk (an error) and of the first write that commits after it (None).
        self.storage_health: Callable[[BaseException | None], None] = lambda _error: None
        self._disk_full = False
        self._session_class: type[Session] = Session  # a watched subclass once `on_commit` is used
        self._commit_watch: _CommitWatch | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session_class(self.engine, expire_on_commit=False) as session:
            if self._disk_full:
                _watch_for_a_write(session, self._writes_again)
            try:
                yield session
            except StorageFull as exc:
                self._disk_full = True
                self.storage_health(exc)
                raise

    def _writes_again(self) -> None:
        if self._disk_full:
            self._disk_full = False
            self.storage_health(None)

    def on_commit(self, tables: Iterable[str], callback: Callable[[Committed], None]) -> None:
        """After each commit that inserted, updated or deleted rows of `tables` (ORM objects by primary
        key; bulk statements by table), call `callback` with them in the committing thread, once the
        connection is back in the pool. Keep it quick: hand the batch over and return. Sessions of
        this database only (its own Session subclass carries the listeners); other tables cost a set
        lookup per flushed object."""
        if self._commit_watch is None:
            self._commit_watch = _CommitWatch()
            self._session_class = self._commit_watch.session_class()
        self._commit_watch.add(tables, callback)

    def ping(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


# -- a full disk, a busy database --------------------------------------------------------------------


def _full_disk_is_storage_full(context: Any) -> BaseException | None:
    """Any statement or commit that fails on a full disk raises `StorageFull` (a 507 with a readable
    message in the API, a notification in the UI) instead of the driver's error."""
    if disk_full(context.original_exception):
        return StorageFull()
    return None


def _watch_for_a_write(session: Session, written: Callable[[], None]) -> None:
    """Call `written` when `session` commits a change (after the disk was full: it is not any more)."""

    def wrote(*_args: Any) -> None:
        session.info["nox_wrote"] = True

    def orm_execute(state: Any) -> None:
        raw = getattr(state.statement, "text", None)  # a text() statement says what it is only in words
        words = raw.lstrip()[:6].upper() if isinstance(raw, str) else ""
        if state.is_insert or state.is_update or state.is_delete or words in ("INSERT", "UPDATE", "DELETE"):
            session.info["nox_wrote"] = True

    def committed(_session: Session) -> None:
        if session.info.pop("nox_wrote", False):
            written()

    event.listen(session, "after_flush", wrote)
    event.listen(session, "do_orm_execute", orm_execute)
    event.listen(session, "after_commit", committed)


# -- what a commit changed (Database.on_commit) ---------------------------------------------------------

_CHANGES = "nox_changes"  # session.info: collected since the transaction began
_COMMITTED = "nox_committed"  # session.info: committed, handed over when the transaction ends


@dataclass
class Committed:
    """The watched rows one commit changed: primary keys per table (a composite key as a tuple), and
    the tables a bulk UPDATE, DELETE or INSERT statement touched (which rows is not known)."""

    rows: dict[str, set[Any]] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)


class _CommitWatch:
    def __init__(self) -> None:
        self.tables: frozenset[str] = frozenset()
        self.callbacks: list[Callable[[Committed], None]] = []

    def add(self, tables: Iterable[str], callback: Callable[[Committed], None]) -> None:
        self.tables = self.tables | frozenset(tables)
        self.callbacks.append(callback)

    def session_class(self) -> type[Session]:
        watched: type[Session] = type("WatchedSession", (Session,), {})
        event.listen(watched, "after_flush", self._flushed)
        event.listen(watched, "do_orm_execute", self._executed)
        event.listen(watched, "after_commit", self._committed)
        event.listen(watched, "after_rollback", self._rolled_back)
        event.listen(watched, "after_transaction_end", self._ended)
        return watched

    def _changes(self, session: Session) -> Committed:
        changes: Committed | None = session.info.get(_CHANGES)
        if changes is None:
            changes = session.info[_CHANGES] = Committed()
        return changes

    def _flushed(self, session: Session, _context: Any) -> None:
        # Still the pre-flush lists here; new rows already have their primary keys.
        for obj in itertools.chain(session.new, session.dirty, session.deleted):
            table = getattr(type(obj), "__tablename__", None)
            if table in self.tables:
                key = inspect(obj).mapper.primary_key_from_instance(obj)
                row = key[0] if len(key) == 1 else tuple(key)
                self._changes(session).rows.setdefault(table, set()).add(row)

    def _executed(self, state: Any) -> None:
        if state.is_update or state.is_delete or state.is_insert:
            table = getattr(getattr(state.statement, "table", None), "name", None)
            if table in self.tables:
                self._changes(state.session).tables.add(table)

    def _committed(self, session: Session) -> None:
        changes = session.info.pop(_CHANGES, None)
        if changes is not None:
            session.info[_COMMITTED] = changes

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_CHANGES, None)

    def _ended(self, session: Session, transaction: Any) -> None:
        if transaction.parent is not None:
            return
        committed: Committed | None = session.info.pop(_COMMITTED, None)
        if committed is None:
            return
        for callback in self.callbacks:
            try:
                callback(committed)
            except Exception:  # the commit happened; one listener's failure must not undo it
                logger.exception("a commit listener failed")


def retry_busy(
    work: Callable[[], T],
    *,
    attempts: int = 4,
    delay: float = 0.2,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`work()`, run again (up to `attempts` times, waiting `delay` doubling to `max_delay`) while SQLite
    answers "database is locked" or "busy": past its own busy timeout, or at once when a read
    transaction cannot be upgraded to a write. For background writers, whose work is one transaction
    that can simply run again; never on the event loop."""
    attempt = 1
    while True:
        try:
            return work()
        except Exception as exc:
            if attempt >= attempts or not database_busy(exc):
                raise
        logger.warning("database busy (attempt {} of {}); trying again in {:.1f} s", attempt, attempts, delay)
        sleep(delay)
        delay = min(delay * 2, max_delay)
        attempt += 1
