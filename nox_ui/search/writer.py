"""The index's one writer in the panel: a thread job (`run(stop)`, under the supervisor) that applies
what each database commit changed, in batches of ~150 ms, one engine commit per batch.

What arrives (`offer`, from `Database.on_commit`; `memory_changed`, when plugins come and go) is only
*which* rows or groups may have changed. The writer re-reads each row as committed, with the same
function the rebuild uses, and updates or deletes its document. Whole groups (a bulk UPDATE, a resync
after a swap, the first look at start) are first compared by fingerprint with SQL alone, so a panel
that changed nothing never opens, or imports, the engine. Audit events are append-only: the writer
indexes every event above the build's high-water mark and drops those retention deleted below it.

Failures: broken files go to `on_broken` (the panel rebuilds in a child process); anything else,
ENOSPC included ("search index: no space left on device"), is raised for the supervisor to log and
restart the job, with the batch put back first, so nothing that was pending is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from loguru import logger

from nox_ui.db import Committed, Database
from nox_ui.search.documents import (
    AUDIT,
    DB_GROUPS,
    MEMORY_GROUPS,
    TABLE_GROUPS,
    Document,
    audit_batches,
    audit_range,
    fingerprint,
    fingerprint_of,
    load,
    load_group,
)
from nox_ui.search.index import SCHEMA_VERSION, Build, IndexCorrupt, IndexLayout, IndexMeta, SearchIndex

BATCH_SECONDS = 0.15  # changes arriving this close together go into one engine commit
AUDIT_CHUNK = 5000  # audit events per commit when catching up on many
IDLE_WAIT = 0.5
# How often the build is compared with the database by SQL alone: other processes' commits (the CLI's
# `users create`, `users disable`) reach the index this late at most.
RECHECK_SECONDS = 45.0


@dataclass
class Pending:
    """What may have changed and is not in the index yet."""

    rows: dict[str, set[str]] = field(default_factory=dict)  # group -> ids of rows to re-read
    verify: set[str] = field(default_factory=set)  # groups to compare by fingerprint, resynced if different
    audit: bool = False  # compare the audit events' id range with the database

    @property
    def empty(self) -> bool:
        return not self.rows and not self.verify and not self.audit

    def merge(self, other: Pending) -> None:
        for group, ids in other.rows.items():
            self.rows.setdefault(group, set()).update(ids)
        self.verify |= other.verify
        self.audit = self.audit or other.audit


class IndexHandle:
    """The open index of the published build, shared by the writer and the searches: opened on first
    use, reopened when another build was published (a rebuild, the CLI's included)."""

    def __init__(self, layout: IndexLayout) -> None:
        self.layout = layout
        self._lock = threading.Lock()
        self._build: Build | None = None
        self._meta: IndexMeta | None = None
        self._index: SearchIndex | None = None

    def usable(self) -> tuple[Build, IndexMeta] | str:
        """The published build and its meta, or why there is none to use (no engine involved)."""
        build = self.layout.current()
        if build is None:
            return "no index yet"
        with self._lock:
            if self._build is not None and self._build.id == build.id and self._meta is not None:
                return self._build, self._meta
        meta = self.layout.read_meta(build)
        if meta is None:
            return f"index {build.id}: its meta file is missing or unreadable"
        if meta.version != SCHEMA_VERSION:
            return f"index {build.id} has schema version {meta.version}, this panel uses {SCHEMA_VERSION}"
        return build, meta

    def open(self, build: Build, meta: IndexMeta) -> SearchIndex:
        """The engine's index for `build` (imports the engine the first time); raises IndexCorrupt."""
        from nox_ui.search.index import engine

        with self._lock:
            if self._index is not None and self._build is not None and self._build.id == build.id:
                return self._index
            old, self._index = self._index, None
            try:
                index = engine().open(build.path)
            finally:
                if old is not None:
                    old.close()  # at once: searches still reading it close their searchers after
            self._index, self._build, self._meta = index, build, meta
        return index

    def remember(self, build: Build, meta: IndexMeta) -> None:
        """The writer updated the build's meta."""
        with self._lock:
            if self._build is not None and self._build.id == build.id:
                self._meta = meta

    def close(self) -> None:
        with self._lock:
            index, self._index, self._build, self._meta = self._index, None, None, None
        if index is not None:
            index.close()


class IndexWriter:
    def __init__(
        self,
        db: Database,
        handle: IndexHandle,
        memory: Callable[[], dict[str, list[Document]]],
        *,
        rebuilding: Callable[[], bool],
        on_broken: Callable[[str, bool], None],  # (why, whether the files are unreadable)
        on_written: Callable[[bool], None],  # after each commit; True: the first since a failure
        batch_seconds: float = BATCH_SECONDS,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.db = db
        self.handle = handle
        self.layout = handle.layout
        self.memory = memory
        self.rebuilding = rebuilding
        self.on_broken = on_broken
        self.on_written = on_written
        self.batch_seconds = batch_seconds
        self.recheck_seconds = recheck_seconds
        self._next_check = time.monotonic() + recheck_seconds
        self.last_error = ""
        self.meta: IndexMeta | None = None  # of the build the writer looked at last
        self._lock = threading.Lock()
        self._pending = Pending()
        self._wake = threading.Event()
        # Set while nothing is pending and the last batch is applied (the build compared at start too).
        self.caught_up = threading.Event()
        self._adopted: str | None = None  # the build id compared with the database
        self._digests: dict[str, dict[str, str]] | None = None  # {group: {key: digest}} of that build

    # -- what arrives (any thread; cheap) ------------------------------------------------------------

    def offer(self, committed: Committed) -> None:
        """From `Database.on_commit`: the watched tables' rows (and bulk-changed tables) of one commit."""
        arrived = Pending()
        for table, keys in committed.rows.items():
            for group in TABLE_GROUPS.get(table, ()):
                if group == AUDIT:
                    arrived.audit = True  # append-only: the tail above the high-water mark
                elif group == "alert" and table == "alert_rules":
                    arrived.verify.add(group)  # its alerts' titles (or, deleted, the alerts themselves)
                else:
                    arrived.rows.setdefault(group, set()).update(str(k) for k in keys)
        for table in committed.tables:
            for group in TABLE_GROUPS.get(table, ()):
                if group == AUDIT:
                    arrived.audit = True
                else:
                    arrived.verify.add(group)
        self._add(arrived)

    def memory_changed(self) -> None:
        """Plugins loaded or unloaded: their menu entries and documents may differ."""
        self._add(Pending(verify=set(MEMORY_GROUPS)))

    def _add(self, arrived: Pending) -> None:
        if arrived.empty:
            return
        with self._lock:
            self._pending.merge(arrived)
            self.caught_up.clear()
        self._wake.set()

    def pending(self) -> bool:
        with self._lock:
            return not self._pending.empty

    def _settled(self) -> bool:
        """Nothing pending: say so (`caught_up`) and let the loop wait."""
        with self._lock:
            if not self._pending.empty:
                return False
            self.caught_up.set()
            return True

    def _take(self) -> Pending:
        with self._lock:
            taken, self._pending = self._pending, Pending()
        return taken

    def _put_back(self, batch: Pending) -> None:
        with self._lock:
            batch.merge(self._pending)
            self._pending = batch

    # -- the job -------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set. Raises on unexpected errors (the supervisor restarts it)."""
        while not stop.is_set():
            if self.rebuilding():  # a new build is on its way: what arrives waits for it
                stop.wait(IDLE_WAIT / 2)
                continue
            usable = self.handle.usable()
            if isinstance(usable, str):
                self.on_broken(usable, False)
                stop.wait(IDLE_WAIT)
                continue
            build, meta = usable
            if self._adopted != build.id:
                self._adopt(build, meta)
            elif time.monotonic() >= self._next_check:
                self._recheck()
            if self._settled():
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
                continue
            stop.wait(self.batch_seconds)
            batch = self._take()
            try:
                written = self._apply(build, batch)
            except IndexCorrupt as exc:
                self._put_back(batch)
                self.on_broken(str(exc), True)
            except BaseException as exc:
                self._put_back(batch)
                self.last_error = str(exc)
                raise
            else:
                recovered, self.last_error = bool(self.last_error), ""
                if written:
                    self.on_written(recovered)

    def _adopt(self, build: Build, meta: IndexMeta) -> None:
        """A build seen for the first time (at start, after a rebuild): compare it with the database."""
        self._adopted, self.meta, self._digests = build.id, meta, None
        self._next_check = time.monotonic() + self.recheck_seconds
        self._add(Pending(verify=set(DB_GROUPS) | set(MEMORY_GROUPS), audit=True))
        logger.debug("search index: checking build {} against the database", build.id)

    def _recheck(self) -> None:
        """Now and then: the database's groups and audit events against the build (SQL and fingerprints;
        the engine only when something differs), for what other processes committed."""
        self._next_check = time.monotonic() + self.recheck_seconds
        self._add(Pending(verify=set(DB_GROUPS), audit=True))

    def _apply(self, build: Build, batch: Pending) -> bool:
        """Whether it committed anything."""
        meta = self.meta
        assert meta is not None
        resync: dict[str, list[Document]] = {}
        upserts: dict[str, Document] = {}
        deletes: dict[str, str] = {}  # key -> its group
        audit_through = meta.audit_high
        audit_below: int | None = None
        audit_reset = False  # the database's audit ids went back: the build's events are another log's
        memory = self.memory() if batch.verify & set(MEMORY_GROUPS) else {}
        # 1. Without the engine: what really differs from the build.
        with self.db.session() as session:
            for group in sorted(batch.verify):
                docs = memory.get(group, []) if group in MEMORY_GROUPS else load_group(session, group)
                if fingerprint_of(docs) != meta.fingerprints.get(group):
                    resync[group] = docs
            for group, ids in batch.rows.items():
                if group in resync:
                    continue  # its whole group is resynced from the same committed rows
                for doc_id, doc in load(session, group, ids).items():
                    if doc is None:
                        deletes[f"{group}:{doc_id}"] = group
                    else:
                        upserts[doc.key] = doc
            audit_docs: list[Document] = []
            if batch.audit:
                low, high, count = audit_range(session)
                after = meta.audit_high
                if high < meta.audit_high:  # an older database was restored: its ids will be reused
                    logger.warning(
                        "search index: the audit log ends at id {}, the index at {}: reindexing audit events",
                        high,
                        meta.audit_high,
                    )
                    audit_reset, after, audit_through = True, 0, 0
                if high > after:
                    for chunk in audit_batches(session, after=after, through=high, size=AUDIT_CHUNK):
                        audit_docs = chunk
                        break
                    if audit_docs:
                        audit_through = audit_docs[-1].seq
                        if audit_through < high:
                            self._add(Pending(audit=True))  # the rest in the next commit
                indexed_any = meta.audit_high >= max(meta.audit_low, 1)
                first_left = low if count else meta.audit_high + 1
                if indexed_any and first_left > meta.audit_low and not audit_reset:
                    audit_below = first_left
        nothing = not resync and not upserts and not deletes and not audit_docs and audit_below is None
        if nothing and not audit_reset:
            return False
        # 2. With the engine: one commit.
        index = self.handle.open(build, meta)
        if self._digests is None:
            self._digests = index.digests()
        digests = self._digests
        for group, docs in resync.items():
            wanted = {doc.key: doc for doc in docs}
            held = digests.get(group, {})
            deletes.update({key: group for key in held if key not in wanted})
            upserts.update({key: doc for key, doc in wanted.items() if held.get(key) != doc.digest})
        for doc in audit_docs:
            upserts[doc.key] = doc
        index.write(
            list(upserts.values()),
            sorted(deletes),
            delete_groups=[AUDIT] if audit_reset else [],
            delete_audit_below=audit_below,
        )
        # 3. The build may have been replaced meanwhile (the CLI): then the batch goes to the new one.
        current = self.layout.current()
        if current is None or current.id != build.id:
            self._put_back(batch)
            return False
        for key, group in deletes.items():
            digests.get(group, {}).pop(key, None)
        for doc in upserts.values():
            if doc.group_key != AUDIT:
                digests.setdefault(doc.group_key, {})[doc.key] = doc.digest
        touched = {doc.group_key for doc in upserts.values()} | set(resync) | set(deletes.values())
        fingerprints = dict(meta.fingerprints)
        for group in touched - {AUDIT}:
            fingerprints[group] = fingerprint(digests.get(group, {}).items())
        updated = replace(
            meta,
            audit_high=audit_through if audit_reset else max(meta.audit_high, audit_through),
            audit_low=0 if audit_reset else audit_below if audit_below is not None else meta.audit_low,
            fingerprints=fingerprints,
            documents=index.document_count(),
        )
        self.layout.write_meta(build, updated)
        self.meta = updated
        self.handle.remember(build, updated)
        return True
