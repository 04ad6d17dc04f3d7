"""The one cache of the panel: namespaces with TTLs, explicit invalidation, stampede protection, stats.

Disk namespaces live in one diskcache under DATA_DIR/cache (mode 0700) with a JSON-only disk: values
must be JSON (a tuple comes back as a list), nothing is ever pickled, and a pickled key or value
planted in the file is refused rather than loaded (CVE-2025-69872). diskcache (and its sqlite/pickle
machinery) is imported on the first disk use only: a panel nobody asks for history never loads it.

Memory namespaces (`MEMORY_NAMESPACES`) hold Python objects by reference, for data that changes too
often for disk to pay or must never reach it: the process snapshot changes every second (JSON-encoding
500 processes to disk each second costs more than reading /proc again) and holds full command lines,
which may contain passwords; the host facts are a few strings, cheaper to read again than to decode.

Every namespace counts hits and misses (this process's) and reports entries and bytes; `stats()` says
which namespaces are "bypassed" and why. A corrupt cache file is moved aside and the cache recreated;
an unusable one (unwritable folder, full disk) is bypassed: callers compute directly, and the disk is
tried again after `RETRY_SECONDS`. Cache trouble is logged and never reaches the caller.

`get_or_compute` runs `compute` once per missing key however many threads ask at the same time: the
others wait for that one result (so call it from a worker thread when `compute` blocks). An exception
of `compute` is not cached: it reaches its caller and every caller waiting on that compute (the next
caller computes again). A waiter gives up on a compute that has not finished after `compute_wait`
seconds (a hung one) and computes by itself.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from nox_ui.config import Settings

if TYPE_CHECKING:
    import diskcache

T = TypeVar("T")

MEMORY_NAMESPACES = frozenset({"processes", "host"})
SIZE_LIMIT = 128 * 2**20  # all disk namespaces together; diskcache evicts the oldest stored first
RETRY_SECONDS = 60.0  # a bypassed disk is tried again this long after it failed
LOCK_TIMEOUT = 1.0  # seconds a disk operation waits for another process's write (`cache clear`)
MEMORY_ENTRIES = 1024  # per memory namespace; the oldest stored goes first
DB_FILE = "cache.db"
LEGACY_DIRS = ("history", "plugins")  # the per-use diskcaches of 0.4.0, replaced by this one
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
KEY_SEPARATOR = "\x1f"  # unit separator: namespaces cannot contain it
COMPUTE_WAIT = 30.0  # seconds a caller waits for another's compute of the same key before computing itself
# The only value files diskcache writes (`Disk.filename`): "ab/cd/<28 hex>.val" inside its folder.
VALUE_FILE_RE = re.compile(
    rf"[0-9a-f]{{2}}{re.escape(os.sep)}[0-9a-f]{{2}}{re.escape(os.sep)}[0-9a-f]{{28}}\.val"
)


class UnsafeEntry(ValueError):
    """A cache row this panel never writes (a pickled key or value): refused, never loaded."""


@dataclass(frozen=True)
class CacheStats:
    namespace: str
    hits: int  # this process's, since start
    misses: int
    entries: int  # unexpired entries now (for disk: every process's)
    bytes: int  # encoded size on disk; for memory, an estimate of the objects' size
    state: str  # "ok" or "bypassed"
    reason: str | None = None  # why bypassed
    storage: str = "disk"  # "disk" or "memory"


@dataclass
class _Flight:
    """One compute in progress for a key; the callers that find it wait on `done`."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    value: Any = None
    error: Exception | None = None  # what the leader's compute raised: the waiters raise it too


class Cache:
    def __init__(
        self,
        directory: Path | None,
        *,
        memory_namespaces: Iterable[str] = MEMORY_NAMESPACES,
        clock: Callable[[], float] = time.time,
        size_limit: int = SIZE_LIMIT,
        retry_seconds: float = RETRY_SECONDS,
        compute_wait: float = COMPUTE_WAIT,
    ) -> None:
        """`directory` None keeps every namespace in memory (tests, services built alone)."""
        self.directory = directory
        self.compute_wait = compute_wait
        self.memory_namespaces = frozenset(memory_namespaces)
        self._clock = clock
        self._size_limit = size_limit
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()  # counters, the memory store, the flights
        self._disk_lock = threading.RLock()  # opening, recovering and bypassing the disk
        self._disk: diskcache.Cache | None = None
        self._bypass_reason: str | None = None
        self._retry_at = 0.0
        self._memory: dict[str, dict[str, tuple[float | None, Any]]] = {}
        self._counts: dict[str, list[int]] = {}  # namespace -> [hits, misses]
        self._flights: dict[tuple[str, str], _Flight] = {}
        # Bumped by invalidate (per namespace) and clear (all): a compute that began before is not stored.
        self._generations: dict[str, int] = {}
        self._epoch = 0

    # -- the interface ------------------------------------------------------------------------------

    def get_or_compute(self, namespace: str, key: str, compute: Callable[[], T], *, ttl: float | None) -> T:
        """The cached value, or `compute()`'s (stored for `ttl` seconds; None: until invalidated)."""
        _check_namespace(namespace)
        while True:
            found, value = self._lookup(namespace, key)
            if found:
                self._count(namespace, hit=True)
                return value
            with self._lock:
                flight = self._flights.get((namespace, key))
                leading = flight is None
                if flight is None:
                    flight = self._flights[(namespace, key)] = _Flight()
            if leading:
                return self._lead(flight, namespace, key, compute, ttl)
            if not flight.done.wait(self.compute_wait):
                # The leader's compute hangs: this caller does not hang with it.
                logger.warning(
                    "cache: a compute of {!r} has run {:.0f} s; computing again", namespace, self.compute_wait
                )
                return self._compute_alone(namespace, key, compute, ttl)
            if flight.ok:
                self._count(namespace, hit=True)
                return flight.value
            if flight.error is not None:
                raise flight.error  # the same failure the leader got, at once (not one retry per waiter)
            # The leader was interrupted (not by an Exception of its compute): try again.

    def get(self, namespace: str, key: str) -> Any | None:
        _check_namespace(namespace)
        found, value = self._lookup(namespace, key)
        self._count(namespace, hit=found)
        return value if found else None

    def set(self, namespace: str, key: str, value: Any, *, ttl: float | None) -> None:
        """Store `value` for `ttl` seconds (None: until invalidated). A disk namespace's value must be
        JSON: anything else raises TypeError (or ValueError for a circular one)."""
        _check_namespace(namespace)
        self._store(namespace, key, value, ttl)

    def invalidate(self, namespace: str, key: str | None = None) -> None:
        """Drop one key, or the whole namespace. A disk namespace is reached when this process has
        the disk open or its file exists (another process may have filled it)."""
        _check_namespace(namespace)
        with self._lock:
            self._generations[namespace] = self._generations.get(namespace, 0) + 1
        if namespace in self.memory_namespaces or self.directory is None:
            with self._lock:
                if key is None:
                    self._memory.pop(namespace, None)
                else:
                    self._memory.get(namespace, {}).pop(key, None)
            return
        if self._disk is None and not (self.directory / DB_FILE).exists():
            return
        disk = self._open_disk()
        if disk is None:
            return
        try:
            if key is None:
                disk.evict(namespace, retry=True)
            else:
                disk.delete(_disk_key(namespace, key), retry=True)
        except _disk_errors() as exc:
            self._disk_failed(exc, "invalidate")

    def stats(self) -> list[CacheStats]:
        """Every namespace this process used, every memory namespace and every one found on disk."""
        now = self._clock()
        with self._lock:
            counts = {namespace: list(pair) for namespace, pair in self._counts.items()}
            memory = {
                namespace: [value for expires, value in entries.values() if expires is None or now < expires]
                for namespace, entries in self._memory.items()
            }
        on_disk = self._disk_usage()
        reason = self._bypass_reason
        names = set(counts) | set(memory) | set(on_disk) | self.memory_namespaces
        result = []
        for namespace in sorted(names):
            hits, misses = counts.get(namespace, [0, 0])
            if namespace in self.memory_namespaces or self.directory is None:
                values = memory.get(namespace, [])
                size = _approximate_size(values) - sys.getsizeof(values)  # the values, not our list
                result.append(CacheStats(namespace, hits, misses, len(values), size, "ok", None, "memory"))
            else:
                entries, size = on_disk.get(namespace, (0, 0))
                state = "bypassed" if reason is not None else "ok"
                result.append(CacheStats(namespace, hits, misses, entries, size, state, reason, "disk"))
        return result

    def clear(self) -> int:
        """Empty every namespace (safe while another process uses the cache); the number of entries
        removed. Raises OSError when the disk cannot be opened."""
        with self._lock:
            self._epoch += 1
            removed = sum(len(entries) for entries in self._memory.values())
            self._memory.clear()
        if self.directory is None:
            return removed
        with self._disk_lock:
            self._retry_at = 0.0  # an explicit clear tries a bypassed disk again now
            disk = self._open_disk()
            if disk is None:
                raise OSError(f"the cache in {self.directory} is not usable: {self._bypass_reason}")
            try:
                removed += int(disk.clear(retry=True))
            except _disk_errors() as exc:
                self._disk_failed(exc, "clear")
                raise OSError(f"clearing the cache in {self.directory} failed: {exc}") from exc
            shutil.rmtree(_aside(self.directory), ignore_errors=True)
        return removed

    def close(self) -> None:
        with self._disk_lock:
            disk, self._disk = self._disk, None
            if disk is not None:
                disk.close()

    # -- lookups and stores ---------------------------------------------------------------------------

    def _lead(
        self, flight: _Flight, namespace: str, key: str, compute: Callable[[], T], ttl: float | None
    ) -> T:
        began = self._generation(namespace)
        try:
            # Another leader may have stored it between our lookup and our flight.
            found, value = self._lookup(namespace, key)
            if not found:
                try:
                    value = compute()
                except Exception as exc:
                    flight.error = exc
                    raise
                if self._generation(namespace) == began:  # else invalidated meanwhile: maybe stale
                    self._store(namespace, key, value, ttl)
            flight.value, flight.ok = value, True
        finally:
            with self._lock:
                del self._flights[(namespace, key)]
            flight.done.set()
        self._count(namespace, hit=found)
        return value

    def _compute_alone(self, namespace: str, key: str, compute: Callable[[], T], ttl: float | None) -> T:
        began = self._generation(namespace)
        value = compute()
        if self._generation(namespace) == began:
            self._store(namespace, key, value, ttl)
        self._count(namespace, hit=False)
        return value

    def _generation(self, namespace: str) -> tuple[int, int]:
        with self._lock:
            return self._epoch, self._generations.get(namespace, 0)

    def _lookup(self, namespace: str, key: str) -> tuple[bool, Any]:
        if namespace in self.memory_namespaces or self.directory is None:
            with self._lock:
                entries = self._memory.get(namespace)
                entry = entries.get(key) if entries else None
                if entry is None:
                    return False, None
                expires, value = entry
                if expires is not None and self._clock() >= expires:
                    del entries[key]  # type: ignore[union-attr]
                    return False, None
                return True, value
        disk = self._open_disk()
        if disk is None:
            return False, None
        disk_key = _disk_key(namespace, key)
        try:
            stored = disk.get(disk_key, retry=False)
        except (UnsafeEntry, ValueError, TypeError, zlib.error) as exc:
            logger.warning("cache: dropping an unreadable entry of {!r} ({})", namespace, exc)
            self._drop(disk, disk_key)
            return False, None
        except _disk_errors() as exc:
            self._disk_failed(exc, "read")
            return False, None
        if stored is None:
            return False, None
        if not (isinstance(stored, list) and len(stored) == 2):
            logger.warning("cache: dropping an entry of {!r} this panel did not write", namespace)
            self._drop(disk, disk_key)
            return False, None
        expires, value = stored
        if expires is not None and self._clock() >= expires:
            self._drop(disk, disk_key)
            return False, None
        return True, value

    def _store(self, namespace: str, key: str, value: Any, ttl: float | None) -> None:
        expires = self._clock() + ttl if ttl is not None else None
        if namespace in self.memory_namespaces or self.directory is None:
            with self._lock:
                entries = self._memory.setdefault(namespace, {})
                entries.pop(key, None)  # re-inserted last: the dict's order is the order of storing
                entries[key] = (expires, value)
                while len(entries) > MEMORY_ENTRIES:
                    del entries[next(iter(entries))]
            return
        disk = self._open_disk()
        if disk is None:
            return
        try:
            # The expiry rides along for our clock; diskcache's own `expire` culls the row later.
            disk.set(_disk_key(namespace, key), [expires, value], expire=ttl, tag=namespace, retry=False)
        except _disk_errors() as exc:
            self._disk_failed(exc, "write")

    def _drop(self, disk: diskcache.Cache, disk_key: str) -> None:
        try:
            disk.delete(disk_key, retry=False)
        except _disk_errors() as exc:
            self._disk_failed(exc, "delete")

    def _count(self, namespace: str, *, hit: bool) -> None:
        with self._lock:
            pair = self._counts.setdefault(namespace, [0, 0])
            pair[0 if hit else 1] += 1

    # -- the disk --------------------------------------------------------------------------------------

    def _open_disk(self) -> diskcache.Cache | None:
        """The open diskcache; None while bypassed or for a memory-only cache."""
        disk = self._disk
        if disk is not None or self.directory is None:
            return disk
        with self._disk_lock:
            if self._disk is not None:
                return self._disk
            if self._bypass_reason is not None and self._clock() < self._retry_at:
                return None
            try:
                self._disk = self._open(self.directory)
            except _disk_errors() as exc:
                self._bypass(f"cannot open {self.directory / DB_FILE}: {exc}")
                return None
            if self._bypass_reason is not None:
                logger.info("cache: {} is usable again", self.directory)
                self._bypass_reason = None
            return self._disk

    def _open(self, directory: Path) -> diskcache.Cache:
        import sqlite3

        import diskcache

        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)  # cached answers may be what only admins should see
        Settings.create_private_file(directory / DB_FILE)  # 0600, and so its -wal/-shm files
        for legacy in LEGACY_DIRS:
            if (directory / legacy).is_dir():
                logger.info("cache: removing the 0.4.0 cache folder {}", directory / legacy)
                shutil.rmtree(directory / legacy, ignore_errors=True)

        def connect() -> diskcache.Cache:
            return diskcache.Cache(
                str(directory),
                disk=_json_only_disk(),
                timeout=LOCK_TIMEOUT,
                size_limit=self._size_limit,
                tag_index=True,  # `invalidate(namespace)` evicts by tag
            )

        try:
            disk = connect()
            try:
                disk.get("\x00probe")  # reads a page of the table: a damaged file fails here, not later
            except sqlite3.DatabaseError:
                disk.close()
                raise
            return disk
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._move_aside(directory, exc)
            return connect()

    def _move_aside(self, directory: Path, exc: Exception) -> None:
        aside = _aside(directory)
        logger.warning(
            "cache: {} is damaged ({}); moved to {} and started empty", directory / DB_FILE, exc, aside
        )
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir(mode=0o700)
        for entry in directory.iterdir():
            entry.rename(aside / entry.name)
        Settings.create_private_file(directory / DB_FILE)

    def _disk_failed(self, exc: BaseException, action: str) -> None:
        import sqlite3

        import diskcache

        if isinstance(exc, diskcache.Timeout) or "locked" in str(exc):
            # Another process holds the write lock (a `cache clear`): this one call goes uncached.
            logger.debug("cache: {} skipped, the cache is busy", action)
            return
        with self._disk_lock:
            if isinstance(exc, sqlite3.DatabaseError) and _is_corrupt(exc) and self.directory is not None:
                self.close()
                try:
                    self._move_aside(self.directory, exc)
                except OSError as move_error:
                    self._bypass(f"{action} failed: {exc}; moving the file aside failed: {move_error}")
                return
            self._bypass(f"{action} failed: {exc}")

    def _bypass(self, reason: str) -> None:
        with self._disk_lock:
            if self._bypass_reason is None:
                logger.warning(
                    "cache: bypassed, computing directly ({}); trying again in {:.0f} s",
                    reason,
                    self._retry_seconds,
                )
            self._bypass_reason = reason
            self._retry_at = self._clock() + self._retry_seconds
            disk, self._disk = self._disk, None
        if disk is not None:
            try:
                disk.close()
            except _disk_errors():
                logger.debug("cache: closing the bypassed disk failed")

    def _disk_usage(self) -> dict[str, tuple[int, int]]:
        """{namespace: (unexpired entries, bytes)} from the file, read without opening diskcache."""
        if self.directory is None or not (self.directory / DB_FILE).is_file():
            return {}
        import sqlite3

        try:
            connection = sqlite3.connect(self.directory / DB_FILE, timeout=LOCK_TIMEOUT)
            try:
                rows = connection.execute(
                    "SELECT tag, COUNT(*), COALESCE(SUM(size), 0) + COALESCE(SUM(LENGTH(value)), 0) "
                    "FROM Cache WHERE expire_time IS NULL OR expire_time > ? GROUP BY tag",
                    (time.time(),),
                ).fetchall()
            finally:
                connection.close()
        except sqlite3.Error as exc:
            logger.debug("cache: no usage figures ({})", exc)
            return {}
        return {str(tag): (int(count), int(size)) for tag, count, size in rows if isinstance(tag, str)}


def _check_namespace(namespace: str) -> None:
    if not NAMESPACE_RE.match(namespace):
        raise ValueError(f"bad cache namespace {namespace!r}: letters, digits and . _ : - only")


def _disk_key(namespace: str, key: str) -> str:
    return f"{namespace}{KEY_SEPARATOR}{key}"


def _aside(directory: Path) -> Path:
    return directory.with_name(directory.name + ".corrupt")


def _is_corrupt(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    return name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"} or "not a database" in text or "malformed" in text


def _disk_errors() -> tuple[type[BaseException], ...]:
    """What a disk operation raises when the cache (not the caller) is at fault."""
    import sqlite3

    import diskcache

    return (OSError, sqlite3.Error, diskcache.Timeout)


@functools.cache
def _json_only_disk() -> type[diskcache.Disk]:
    """diskcache's JSONDisk that also refuses to read what it never writes: JSONDisk stores keys raw
    and values as compressed JSON bytes, yet its base class would unpickle a row marked as pickle, and
    would open (and, dropping the row, delete) whatever file a row names, "/srv/nox/data/nox.db" too."""
    import diskcache
    from diskcache.core import MODE_BINARY, MODE_RAW

    class JsonOnlyDisk(diskcache.JSONDisk):
        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise UnsafeEntry("a pickled key")
            return super().get(key, raw)

        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode not in (MODE_RAW, MODE_BINARY) or read:
                raise UnsafeEntry(f"a value stored in mode {mode}")
            if mode == MODE_BINARY and not _is_value_file(filename):
                raise UnsafeEntry("a value file outside the cache folder")
            return super().fetch(mode, filename, value, read)

        def remove(self, file_path: str) -> None:
            if not _is_value_file(file_path):
                logger.warning("cache: not removing {!r}, a file this cache never wrote", file_path)
                return
            super().remove(file_path)

    return JsonOnlyDisk


def _is_value_file(filename: object) -> bool:
    return isinstance(filename, str) and VALUE_FILE_RE.fullmatch(filename) is not None


def _approximate_size(value: Any) -> int:
    """Bytes of `value` and what it holds (containers, dataclasses), each object counted once."""
    seen: set[int] = set()
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.append(vars(item))
        elif hasattr(item, "__slots__"):
            stack.extend(getattr(item, slot) for slot in item.__slots__ if hasattr(item, slot))
    return total
