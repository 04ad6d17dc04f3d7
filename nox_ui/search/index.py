"""The search index behind a small interface, and where it lives on disk.

`SearchIndex` is all the panel asks of an engine (Whoosh today, in `whoosh_index.py`, the only module
that imports it; see docs/architecture.md "Search" for what a tantivy one would change). `engine()`
imports that module on first use, so a server that neither writes nor searches never loads it.

On disk, under DATA_DIR/index:

    current -> build-<id>     a symlink, replaced atomically (os.replace) when a rebuild is published
    build-<id>/               one complete index: the engine's files and meta.json
    tmp-<id>/                 a rebuild in progress (the CLI's or the panel's child process)

`meta.json` says what the build holds without opening it: the schema version, the build id, the audit
ids it covers, one fingerprint per small group, its document count. The panel decides at start from it
and the database alone whether to rebuild, catch up or do nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from nox_ui.durable import fsync_directory
from nox_ui.roles import Role
from nox_ui.search.documents import Document
from nox_ui.search.query import Query

AUDIT_COUNT_LIMIT = 2000  # audit events counted exactly; past this a count is a lower bound
# Bump when the engine's schema, the analyzer or a document builder changes: a build of another
# version is rebuilt at the next start.
SCHEMA_VERSION = 2  # 2: the vocab field
META = "meta.json"
CURRENT = "current"
_KEEP_OLD_BUILDS = 1  # a search that opened the previous build a moment ago may still read it
_STALE_TMP_SECONDS = 3600.0


class IndexCorrupt(Exception):
    """The engine cannot open or read the index's files."""


class IndexClosed(Exception):
    """The index was closed (replaced by a newer build) while a search was about to read it."""


class IndexFull(OSError):
    """Writing the index failed for lack of space; pending changes are kept and retried."""


@dataclass(frozen=True)
class EngineHit:
    type: str
    id: str
    title: str
    snippet: str  # escaped HTML with <mark> around the matched words
    url: str
    score: float


@dataclass(frozen=True)
class Found:
    """One search: the page of hits and the matches per type (of the caller's roles).
    `fuzzy`: found by typo-tolerant matching because exact words found nothing; `partial`: the time
    limit cut the collection short."""

    counts: dict[str, int]
    hits: list[EngineHit]
    fuzzy: bool
    partial: bool = False
    capped: bool = False  # the audit events' count is a lower bound (there are more)

    @property
    def empty(self) -> bool:
        return not self.hits and not any(self.counts.values())


class SearchIndex(Protocol):
    """What the panel needs of a search engine. Documents are replaced by `Document.key`."""

    def write(
        self,
        upserts: Iterable[Document],
        deletes: Iterable[str] = (),
        *,
        delete_groups: Iterable[str] = (),
        delete_audit_below: int | None = None,
    ) -> None:
        """One commit: drop whole groups and audit events with seq < the number, delete these keys,
        add or replace these documents. Raises IndexFull for ENOSPC, IndexCorrupt for broken files."""
        ...

    def search(
        self,
        query: Query,
        roles: frozenset[Role],
        *,
        type: str | None,
        offset: int,
        limit: int,
        counts: dict[str, int] | None,
        fuzzy: bool | None,
        time_limit: float,
    ) -> Found:
        """Hits `offset` to `offset + limit` among documents of these roles (and `type`): the other
        types ranked by relevance, then audit events newest first, snippets highlighted; and the
        matches per type ignoring `type` (`counts` given: those, cached from an earlier call). `fuzzy`:
        None tries exact words first and typo-tolerant ones when those find nothing; True or False
        forces one."""
        ...

    def digests(self) -> dict[str, dict[str, str]]:
        """{group: {key: digest}} of every document outside the audit group (small groups only)."""
        ...

    def document_count(self) -> int: ...

    def refresh(self) -> None:
        """See the latest commit (another writer's too) in the next searches."""
        ...

    def close(self) -> None: ...


class IndexBuilder(Protocol):
    """A new index written in one go (the rebuild): add everything, then commit once."""

    def add(self, documents: Iterable[Document]) -> None: ...

    def commit(self) -> None: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    def open(self, path: Path) -> SearchIndex: ...

    def create(self, path: Path) -> IndexBuilder: ...


def engine() -> Engine:
    """The engine, imported on first use (Whoosh costs ~3.5 MiB resident)."""
    from nox_ui.search import whoosh_index

    return whoosh_index.ENGINE


@dataclass
class IndexMeta:
    version: int
    build_id: str
    built_at: float
    audit_low: int = 0  # the lowest audit id the build may hold (everything below is gone)
    audit_high: int = 0  # every audit event up to this id is in the build
    fingerprints: dict[str, str] = field(default_factory=dict)
    documents: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def parse(cls, text: str) -> IndexMeta:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("meta is not an object")
        return cls(
            version=int(data["version"]),
            build_id=str(data["build_id"]),
            built_at=float(data["built_at"]),
            audit_low=int(data.get("audit_low", 0)),
            audit_high=int(data.get("audit_high", 0)),
            fingerprints={str(k): str(v) for k, v in dict(data.get("fingerprints", {})).items()},
            documents=int(data.get("documents", 0)),
        )


@dataclass(frozen=True)
class Build:
    id: str
    path: Path


class IndexLayout:
    """DATA_DIR/index: the published build, its meta file, new builds and their atomic swap."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Build | None:
        """The published build, from one readlink (cheap enough to call before every search)."""
        try:
            target = os.readlink(self.root / CURRENT)
        except OSError:
            return None
        name = Path(target).name
        if not name.startswith("build-"):
            return None
        return Build(id=name.removeprefix("build-"), path=self.root / name)

    def read_meta(self, build: Build) -> IndexMeta | None:
        """The build's meta, or None when it is missing, unreadable or of another schema version."""
        try:
            meta = IndexMeta.parse((build.path / META).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta

    def write_meta(self, build: Build | Path, meta: IndexMeta) -> None:
        """Atomically (write, fsync, rename): a crash leaves the old meta or the new one."""
        folder = build.path if isinstance(build, Build) else build
        partial = folder / f".{META}.{os.getpid()}.partial"
        with partial.open("w", encoding="utf-8") as out:
            out.write(meta.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, folder / META)

    def size_bytes(self, build: Build) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(build.path):
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
        return total

    def new_tmp(self) -> tuple[str, Path]:
        """A fresh folder for a rebuild, private to its process."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        build_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path = self.root / f"tmp-{build_id}"
        path.mkdir(mode=0o700)
        return build_id, path

    @contextlib.contextmanager
    def _swap_lock(self) -> Iterator[None]:
        """Serializes publishing: two rebuilds (the CLI's and the panel's) finish one after the other."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.root / ".swap.lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def publish(self, build_id: str, tmp: Path) -> Build:
        """Make the finished build in `tmp` the current one (rename, then an atomic symlink swap), and
        delete builds older than the previous one."""
        with self._swap_lock():
            final = self.root / f"build-{build_id}"
            os.rename(tmp, final)
            link = self.root / f".{CURRENT}.{build_id}"
            try:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                os.symlink(final.name, link)
                os.replace(link, self.root / CURRENT)
            except OSError:
                shutil.rmtree(final, ignore_errors=True)
                with contextlib.suppress(OSError):
                    link.unlink()
                raise
            fsync_directory(self.root)
            self._prune(keep=final.name)
        return Build(id=build_id, path=final)

    def _prune(self, keep: str) -> None:
        builds = sorted(
            (p for p in self.root.glob("build-*") if p.name != keep and p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in builds[_KEEP_OLD_BUILDS:]:
            shutil.rmtree(old, ignore_errors=True)
        now = time.time()
        for tmp in self.root.glob("tmp-*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(tmp, ignore_errors=True)

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)


def roles_for(role: Role) -> frozenset[Role]:
    """The document roles a caller of `role` may see."""
    return frozenset(r for r in Role if role.allows(r))
