"""`SearchService` (`services.search`): one search over everything a caller may see, and the index's
upkeep. UI-free; the engine is imported on the first write or search (never by an idle panel).

- Searching (`search`, in a worker thread): the caller's string is parsed by `query.parse` (an Invalid
  with a sentence for what cannot be searched), run against the published build with the caller's roles
  as a filter at query time (a viewer's counts never include users, audit events or notifiers),
  typo-tolerant when exact words find nothing, and merged with the live processes whose names match.
  Counts per type are cached ("search" namespace, per build, role and normalized query) until the next
  index commit.
- Upkeep: `IndexWriter` (writer.py) is the supervisor's thread job "search"; commits reach it through
  `Database.on_commit`, plugin changes through the host's `changed` signal. A missing, stale or broken
  build is rebuilt by `nox-ui search reindex --from-panel` in a child process; meanwhile searches answer
  with state "rebuilding" (and the old build's hits when there is one), never an error.
"""

from __future__ import annotations

import asyncio
import html
import math
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loguru import logger

from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid
from nox_ui.roles import PANEL, Principal, Role, Target, check
from nox_ui.search import live
from nox_ui.search.documents import (
    AUDIT,
    LIVE_TYPES,
    TABLE_GROUPS,
    TYPE_ROLES,
    TYPES,
    Document,
    memory_groups,
)
from nox_ui.search.index import (
    AUDIT_COUNT_LIMIT,
    Build,
    Found,
    IndexClosed,
    IndexCorrupt,
    IndexLayout,
    IndexMeta,
    roles_for,
)
from nox_ui.search.query import Query, parse
from nox_ui.search.writer import IndexHandle, IndexWriter

if TYPE_CHECKING:
    from nox_ui.cache import Cache
    from nox_ui.plugins.host import PluginHost
    from nox_ui.services.audit import AuditService
    from nox_ui.services.processes import ProcessService
    from nox_ui.supervisor import Supervisor

JOB = "search"  # the supervisor's name for the writer
PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 50  # deep pages cost a collection of page x per_page hits; nobody reads page 51
TIME_LIMIT = 1.0  # seconds one collection may take before it stops with what it has
PROCESS_SECONDS = 2.0  # a process listing is reused this long (typing fires a search per key)
PROCESS_HITS = 50
COUNTS_TTL = 600.0  # seconds; every index commit invalidates them anyway
RETRY_SECONDS = 60.0  # after a failed rebuild, the next automatic one waits this long
CACHE_NAMESPACE = "search"
FAILED_MESSAGE = "the search index could not be rebuilt; an admin can see why on the diagnostics page"
_PROGRESS = re.compile(r"(\d+(?:\.\d+)?)%")


@dataclass(frozen=True)
class SearchHit:
    type: str
    id: str
    title: str  # plain text
    snippet: str  # escaped HTML with <mark> around the matched words
    url: str  # a same-site path that opens the item
    score: float


@dataclass(frozen=True)
class SearchResults:
    query: str  # the search as understood (normalized)
    type: str | None
    page: int
    pages: int
    total: int
    counts: dict[str, int]  # matches per type the caller may see (types with none are left out)
    hits: list[SearchHit]
    state: str  # "ready" | "rebuilding" | "failed"
    progress: float | None  # of a rebuild, 0.0 to 1.0, when known
    fuzzy: bool  # no exact match: these are close ones
    message: str  # one sentence for the person searching, or ""
    capped: tuple[str, ...] = ()  # types whose count is a lower bound ("2000+"): audit events, past 2,000


@dataclass(frozen=True)
class IndexStatus:
    state: str  # "ready" | "rebuilding" | "failed"
    documents: int
    progress: float | None
    last_error: str
    path: str
    size_bytes: int
    built_at: float | None  # Unix time of the published build


class ChildRebuild:
    """`nox-ui search reindex --from-panel` in a child process: its memory goes back to the system when
    it ends; its progress lines go to the panel's log."""

    def __init__(self, data_dir: Path, database_url: str, reason: str) -> None:
        self.reason = reason
        self.progress: float | None = 0.0
        self.last_line = ""
        self.returncode: int | None = None
        env = {**os.environ, "NOX_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "nox_ui", "--data-dir", str(data_dir)]
        self._process = subprocess.Popen(
            [*command, "search", "reindex", "--from-panel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._thread = threading.Thread(target=self._follow, name="search rebuild", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.strip()
            if not line:
                continue
            self.last_line = line
            found = _PROGRESS.search(line)
            if found:
                self.progress = min(1.0, float(found.group(1)) / 100)
            logger.info("search index: {}", line)
        self.returncode = self._process.wait()

    @property
    def running(self) -> bool:
        return self.returncode is None

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._thread.join(timeout=10)


class SearchService:
    def __init__(
        self,
        db: Database,
        layout: IndexLayout,
        *,
        audit: AuditService | None = None,
        processes: ProcessService | None = None,
        plugins: PluginHost | None = None,
        cache: Cache | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """`data_dir` given: a missing or broken index is rebuilt in a child process (the panel);
        without it (tools, the benchmark) nothing is rebuilt behind the caller's back."""
        self.db = db
        self.layout = layout
        self.audit = audit
        self.processes = processes
        self.plugins = plugins
        self.cache = cache
        self.data_dir = data_dir
        self.handle = IndexHandle(layout)
        self.writer = IndexWriter(
            db,
            self.handle,
            self._memory,
            rebuilding=self._rebuilding,
            on_broken=self._broken,
            on_written=self._written,
        )
        self._lock = threading.Lock()
        self._child: ChildRebuild | None = None
        self._failed: tuple[float, str] | None = None  # (monotonic time, why) of the last failed rebuild
        self._bad_build: str | None = None  # a published build the engine could not read
        self._started = False
        self._supervisor: Supervisor | None = None
        self._processes_seen: tuple[float, list[tuple[int, str]]] = (-math.inf, [])
        # Bumped with each index commit, before its counts are invalidated: counts computed across a
        # commit are not cached (they could predate it and would outlive the invalidation).
        self._generation = 0
        self._generation_lock = threading.Lock()
        db.on_commit(TABLE_GROUPS, self.writer.offer)
        if plugins is not None:
            plugins.changed.connect(lambda _name: self.writer.memory_changed())

    @classmethod
    def offline(cls, db: Database, layout: IndexLayout) -> SearchService:
        """Searches of an existing index, nothing started (the benchmark, tools)."""
        return cls(db, layout)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, supervisor: Supervisor) -> None:
        """Start the writer as the supervisor's thread job "search" (idempotent). A missing, stale or
        broken index is then rebuilt in the background."""
        self._started = True
        self._supervisor = supervisor
        supervisor.thread(JOB, self.writer.run)

    async def stop(self, supervisor: Supervisor) -> None:
        """Stop the writer and any rebuild in progress (its half-written folder is discarded later)."""
        self._started = False
        await supervisor.stop(JOB)
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            await asyncio.to_thread(child.stop)

    def close(self) -> None:
        self.handle.close()

    # -- state -------------------------------------------------------------------------------------

    def _rebuilding(self) -> bool:
        with self._lock:
            child = self._child
            if child is None:
                return False
            if child.running:
                return True
            self._child = None
        if child.returncode == 0:
            self._failed = None
            logger.info("search index: rebuilt ({})", child.last_line)
        else:
            why = child.last_line or f"the rebuild exited with status {child.returncode}"
            self._failed = (time.monotonic(), why)
            logger.error("search index: rebuild failed: {}", why)
        return False

    def _broken(self, reason: str, corrupt: bool) -> None:
        """The published build is missing or stale, or (`corrupt`) the engine cannot read it: rebuild
        it in the background; until then searches answer "rebuilding"."""
        if corrupt:
            build = self.layout.current()
            if build is not None and build.id != self._bad_build:
                self._bad_build = build.id
                logger.error("search index: {}", reason)
        self.rebuild(reason)

    def rebuild(self, reason: str, *, force: bool = False) -> bool:
        """Start the child rebuild unless one runs (or, unless `force`, one failed a moment ago); False
        when none was started. Only a started panel service rebuilds."""
        if self.data_dir is None or not self._started or self._rebuilding():
            return False
        failed = self._failed
        if failed is not None and not force and time.monotonic() - failed[0] < RETRY_SECONDS:
            return False
        with self._lock:
            if self._child is not None:
                return False
            logger.info("search index: {}; rebuilding it in the background", reason)
            try:
                self._child = ChildRebuild(self.data_dir, self.db.url, reason)
            except OSError as exc:  # no process could be started (out of processes, of memory)
                self._failed = (time.monotonic(), f"the rebuild could not start: {exc}")
                logger.error("search index: {}", self._failed[1])
                return False
        return True

    def _written(self, recovered: bool) -> None:
        with self._generation_lock:
            self._generation += 1
            if self.cache is not None:
                self.cache.invalidate(CACHE_NAMESPACE)
        if recovered and self._supervisor is not None:
            self._supervisor.report(JOB, None)  # the first commit after a failure: running again

    def _state(self) -> tuple[str, float | None, str]:
        """(state, progress, last error) as searches and the status report them."""
        if self._rebuilding():
            child = self._child
            return "rebuilding", child.progress if child else None, ""
        usable = self.handle.usable()
        if isinstance(usable, str) or usable[0].id == self._bad_build:
            failed = self._failed
            if failed is not None:
                return "failed", None, failed[1]
            return "rebuilding", None, usable if isinstance(usable, str) else "the index files are damaged"
        return "ready", None, self.writer.last_error

    def status(self) -> IndexStatus:
        """The index as an admin sees it: reads a meta file and a folder listing, never the engine."""
        state, progress, error = self._state()
        usable = self.handle.usable()
        if isinstance(usable, str):
            return IndexStatus(state, 0, progress, error, str(self.layout.root), 0, None)
        build, meta = usable
        meta = self.writer.meta if self.writer.meta and self.writer.meta.build_id == build.id else meta
        return IndexStatus(
            state=state,
            documents=meta.documents,
            progress=progress,
            last_error=error,
            path=str(build.path),
            size_bytes=self.layout.size_bytes(build),
            built_at=meta.built_at,
        )

    async def reindex(self, actor: Principal, *, ip: str = "") -> None:
        """An admin's rebuild (audited): the child process starts now; Conflict while one runs."""
        await asyncio.to_thread(self._reindex, actor, ip)

    def _reindex(self, actor: Principal, ip: str) -> None:
        if self.audit is None:
            raise Conflict("this search service cannot rebuild its index")
        check(
            actor, Role.ADMIN, Target("search", "index"), audit=self.audit, attempted="search.reindex", ip=ip
        )
        if self._rebuilding():
            raise Conflict("the search index is being rebuilt already")
        self.audit.record_now(
            actor=actor,
            action="search.reindex",
            outcome="success",
            target_type="search",
            target_id="index",
            ip=ip,
        )
        if not self.rebuild(f"rebuild asked for by {actor.label}", force=True):
            raise Conflict("the search index cannot be rebuilt now (the panel is not running it)")

    # -- what is searched ---------------------------------------------------------------------------

    def _memory(self) -> dict[str, list[Document]]:
        if self.plugins is None:
            return memory_groups()
        return memory_groups(self.plugins.nav_items(PANEL), self.plugins.search_documents())

    def types(self, principal: Principal | None = None) -> dict[str, str]:
        """Type key -> label: the panel's and those of the enabled plugins' documents."""
        found = dict(TYPES)
        if self.plugins is not None:
            for doc in self.plugins.search_documents():
                if principal is None or principal.role.allows(doc.role):
                    found.setdefault(doc.type, doc.type.replace("_", " ").replace("-", " ").capitalize())
        return found

    def _visible_types(self, principal: Principal) -> dict[str, str]:
        return {
            key: label
            for key, label in self.types(principal).items()
            if principal.role.allows(TYPE_ROLES.get(key, Role.VIEWER))
        }

    # -- searching ---------------------------------------------------------------------------------

    async def search(
        self,
        principal: Principal,
        q: str,
        *,
        type: str | None = None,
        page: int = 1,
        per_page: int = PER_PAGE,
    ) -> SearchResults:
        """One page of what `principal` may see that matches `q` (run off the event loop). Raises
        Invalid for a string that cannot be searched or a bad type, page or page size."""
        return await asyncio.to_thread(self.search_now, principal, q, type=type, page=page, per_page=per_page)

    def search_now(
        self,
        principal: Principal,
        q: str,
        *,
        type: str | None = None,
        page: int = 1,
        per_page: int = PER_PAGE,
    ) -> SearchResults:
        """`search`, in the calling thread (a worker thread; the benchmark)."""
        visible = self._visible_types(principal)
        if not 1 <= page <= MAX_PAGE:
            raise Invalid(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise Invalid(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if type is not None and type not in visible:
            raise Invalid(f"unknown type {type[:40]!r} (choose one of: {', '.join(visible)})")
        query = parse(q, set(visible))
        wanted = type or query.type
        if query.empty:
            state, progress, _error = self._state()
            message = "type a word to search for" if q.strip() else ""
            return SearchResults(
                query.normalized, wanted, page, 1, 0, {}, [], state, progress, False, message
            )
        offset = (page - 1) * per_page
        processes = self._matching_processes(principal, query, wanted, fuzzy=False)
        found = self._search_index(principal, query, wanted, offset, len(processes), per_page)
        state, progress, _error = self._state()
        counts = dict(found.counts) if found is not None else {}
        fuzzy = found.fuzzy if found is not None else False
        if not processes and (fuzzy or not any(counts.values())):
            processes = self._matching_processes(principal, query, wanted, fuzzy=True)
            fuzzy = fuzzy or bool(processes)
        if processes:
            counts["process"] = len(processes)
        total = counts.get(wanted, 0) if wanted is not None else sum(counts.values())
        hits = [_process_hit(name, pids) for name, pids in processes[offset : offset + per_page]]
        hits += [
            SearchHit(h.type, h.id, h.title, h.snippet, h.url, h.score) for h in (found.hits if found else [])
        ]
        if state == "rebuilding":
            shown = f" ({progress:.0%})" if progress is not None else ""
            message = f"the search index is being rebuilt{shown}; results may be incomplete"
        elif state == "failed":
            # Why (a traceback line, a database error) is for admins: status() and the diagnostics page.
            message = FAILED_MESSAGE
        elif found is not None and found.partial:
            message = "this search took too long and was cut short: add words to narrow it"
        elif fuzzy:
            message = "no exact matches; showing close ones"
        elif found is not None and found.capped:
            message = f"more than {AUDIT_COUNT_LIMIT:,} audit events match: the newest are shown"
        else:
            message = ""
        return SearchResults(
            query=query.normalized,
            type=wanted,
            page=page,
            pages=max(1, math.ceil(total / per_page)),
            total=total,
            counts={key: counts[key] for key in visible if counts.get(key)},
            hits=hits[:per_page],
            state=state,
            progress=progress,
            fuzzy=fuzzy,
            message=message,
            capped=(AUDIT,) if found is not None and found.capped else (),
        )

    def _search_index(
        self, principal: Principal, query: Query, wanted: str | None, offset: int, live: int, per_page: int
    ) -> Found | None:
        """The index's part: counts per type and its share of the page (None: no usable build, and a
        rebuild was asked for)."""
        usable = self.handle.usable()
        if isinstance(usable, str):
            self._broken(usable, corrupt=False)
            return None
        build, meta = usable
        if build.id == self._bad_build:
            return None
        # The live processes come first on the pages: the index's share starts after them.
        limit = 0 if wanted in LIVE_TYPES else per_page - max(0, min(per_page, live - offset))
        try:
            try:
                return self._engine_search(
                    build, meta, principal, query, wanted, max(0, offset - live), limit
                )
            except IndexClosed:  # a newer build replaced it a moment ago: search that one
                usable = self.handle.usable()
                if isinstance(usable, str):
                    return None
                build, meta = usable
                return self._engine_search(
                    build, meta, principal, query, wanted, max(0, offset - live), limit
                )
        except IndexClosed:
            return None
        except IndexCorrupt as exc:
            self._broken(str(exc), corrupt=True)
            return None

    def _engine_search(
        self,
        build: Build,
        meta: IndexMeta,
        principal: Principal,
        query: Query,
        wanted: str | None,
        offset: int,
        limit: int,
    ) -> Found:
        """One engine search, its counts per type from the cache when this build answered them before."""
        cache_key = f"{build.id}:{principal.role.value}:{query.normalized}"
        generation = self._generation  # read before the cache: counts cached before a commit are stale

        def engine_search(cached: dict[str, Any] | None) -> Found:
            return self.handle.open(build, meta).search(
                query,
                roles_for(principal.role),
                type=None if wanted in LIVE_TYPES else wanted,
                offset=offset,
                limit=limit,
                counts=None if cached is None else dict(cached["counts"]),
                fuzzy=None if cached is None else bool(cached["fuzzy"]),
                time_limit=TIME_LIMIT,
            )

        cached = self.cache.get(CACHE_NAMESPACE, cache_key) if self.cache is not None else None
        found = engine_search(cached)
        if cached is not None:
            if generation == self._generation:
                return replace(found, capped=bool(cached["capped"]))
            # A commit landed during the search: its hits may be newer than the cached counts.
            generation = self._generation
            found = engine_search(None)
        if self.cache is not None and not found.partial:
            value = {"counts": found.counts, "fuzzy": found.fuzzy, "capped": found.capped}
            with self._generation_lock:
                if generation == self._generation:
                    self.cache.set(CACHE_NAMESPACE, cache_key, value, ttl=COUNTS_TTL)
        return found

    def _matching_processes(
        self, principal: Principal, query: Query, wanted: str | None, *, fuzzy: bool
    ) -> list[tuple[str, list[int]]]:
        """(name, pids) of the live processes whose names match, at most PROCESS_HITS names."""
        if self.processes is None or wanted not in (None, "process"):
            return []
        seen_at, listed = self._processes_seen
        if time.monotonic() - seen_at > PROCESS_SECONDS:
            from nox_ui.services.processes import MAX_LIMIT

            page = self.processes.list(principal, sort="name", limit=MAX_LIMIT, descending=False)
            listed = [(p.pid, p.name) for p in page.items if p.name]
            self._processes_seen = (time.monotonic(), listed)
        names = live.matching(query, (name for _pid, name in listed), fuzzy=fuzzy)[:PROCESS_HITS]
        return [(name, [pid for pid, n in listed if n == name]) for name in names]


def _process_hit(name: str, pids: list[int]) -> SearchHit:
    shown = ", ".join(str(pid) for pid in pids[:5]) + (", …" if len(pids) > 5 else "")
    count = "1 process" if len(pids) == 1 else f"{len(pids)} processes"
    return SearchHit(
        type="process",
        id=name,
        title=name,
        snippet=f"<mark>{html.escape(name)}</mark> · {count} · pid {html.escape(shown)}",
        url=f"/processes?q={quote(name, safe='')}",
        score=0.0,
    )
