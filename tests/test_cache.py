"""nox_ui.cache on a real diskcache in tmp_path: namespaces, TTLs, invalidation, stampedes, JSON only,
and a corrupt, unwritable or full cache (rebuilt or bypassed, never an error for the caller)."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache.core
import pytest
from loguru import logger

from nox_ui import cache as cache_module
from nox_ui.cache import DB_FILE, Cache, CacheStats


class Clock:
    """A clock the test moves: TTLs expire when the test says, not after a sleep."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(tmp_path: Path, clock: Clock) -> Iterator[Cache]:
    opened = Cache(tmp_path / "cache", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


def stats_of(cache: Cache, namespace: str) -> CacheStats:
    (found,) = [stats for stats in cache.stats() if stats.namespace == namespace]
    return found


def rows(directory: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(directory / DB_FILE) as db:
        return db.execute("SELECT raw, mode, tag, filename FROM Cache").fetchall()


class Counter:
    def __init__(self, value: Any = "computed") -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


# -- the interface ------------------------------------------------------------------------------------


def test_namespaces_are_isolated(cache: Cache) -> None:
    cache.set("history", "k", [1, 2], ttl=None)
    cache.set("search", "k", {"hits": 3}, ttl=None)
    cache.set("processes", "k", ("a", "tuple"), ttl=None)
    assert cache.get("history", "k") == [1, 2]
    assert cache.get("search", "k") == {"hits": 3}
    assert cache.get("processes", "k") == ("a", "tuple")  # memory: the object itself

    cache.invalidate("history")
    assert cache.get("history", "k") is None
    assert cache.get("search", "k") == {"hits": 3}
    cache.invalidate("search", "other key")
    assert cache.get("search", "k") == {"hits": 3}
    cache.invalidate("search", "k")
    assert cache.get("search", "k") is None
    cache.invalidate("processes")
    assert cache.get("processes", "k") is None

    with pytest.raises(ValueError, match="namespace"):
        cache.get("bad\x1fname", "k")


@pytest.mark.parametrize("namespace", ["history", "processes"])
def test_an_entry_expires_after_its_ttl(cache: Cache, clock: Clock, namespace: str) -> None:
    compute = Counter()
    assert cache.get_or_compute(namespace, "k", compute, ttl=10) == "computed"
    clock.now += 9.9
    assert cache.get_or_compute(namespace, "k", compute, ttl=10) == "computed"
    assert compute.calls == 1
    clock.now += 0.1
    assert cache.get(namespace, "k") is None
    assert cache.get_or_compute(namespace, "k", compute, ttl=None) == "computed"
    assert compute.calls == 2
    clock.now += 10 * 365 * 86400  # no ttl: kept until invalidated
    assert cache.get(namespace, "k") == "computed"


def test_a_cached_none_is_a_hit_and_a_failed_compute_is_not_cached(cache: Cache) -> None:
    nothing = Counter(None)
    assert cache.get_or_compute("search", "empty", nothing, ttl=60) is None
    assert cache.get_or_compute("search", "empty", nothing, ttl=60) is None
    assert nothing.calls == 1

    def broken() -> int:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        cache.get_or_compute("search", "k", broken, ttl=60)
    assert cache.get_or_compute("search", "k", lambda: 7, ttl=60) == 7


@pytest.mark.parametrize("namespace", ["history", "processes"])
def test_concurrent_callers_of_a_missing_key_wait_for_one_compute(cache: Cache, namespace: str) -> None:
    callers = 12
    started = threading.Barrier(callers)
    calls: list[int] = []
    results: list[Any] = []
    failures: list[BaseException] = []

    def slow() -> list[int]:
        calls.append(1)
        # Hold the key a moment, so the other callers (released together) pile up behind this compute;
        # any that come later find the stored value: either way one compute.
        time.sleep(0.2)
        return [len(calls)]

    def ask() -> None:
        try:
            started.wait(timeout=10)
            results.append(cache.get_or_compute(namespace, "hot", slow, ttl=60))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(calls) == 1
    assert results == [[1]] * callers
    stats = stats_of(cache, namespace)
    assert (stats.misses, stats.hits) == (1, callers - 1)


class CountedEvent(threading.Event):
    """A flight's `done` that counts the callers that began waiting on it."""

    waiting: list[int] = []

    def wait(self, timeout: float | None = None) -> bool:
        CountedEvent.waiting.append(1)
        return super().wait(timeout)


@dataclass
class CountedFlight(cache_module._Flight):
    done: threading.Event = field(default_factory=CountedEvent)


@pytest.mark.parametrize("namespace", ["history", "processes"])
def test_every_waiter_gets_the_leaders_exception_and_compute_runs_once(
    cache: Cache, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_Flight", CountedFlight)
    CountedEvent.waiting.clear()
    waiters = 6
    leader_in = threading.Event()
    release = threading.Event()
    calls: list[int] = []
    outcomes: list[BaseException | str] = []

    def failing() -> str:
        calls.append(1)
        leader_in.set()
        release.wait(timeout=10)
        raise RuntimeError("leader failed")

    def ask() -> None:
        try:
            outcomes.append(cache.get_or_compute(namespace, "k", failing, ttl=60))
        except BaseException as exc:
            outcomes.append(exc)

    leader = threading.Thread(target=ask)
    leader.start()
    assert leader_in.wait(timeout=10)
    followers = [threading.Thread(target=ask) for _ in range(waiters)]
    for follower in followers:
        follower.start()
    for _ in range(2000):  # every follower waits on the leader's flight before it fails
        if len(CountedEvent.waiting) == waiters:
            break
        time.sleep(0.005)
    assert len(CountedEvent.waiting) == waiters
    release.set()
    for thread in [leader, *followers]:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(calls) == 1  # the waiters did not each compute again, one after the other
    assert len(outcomes) == waiters + 1
    assert all(isinstance(outcome, RuntimeError) and str(outcome) == "leader failed" for outcome in outcomes)
    assert cache.get(namespace, "k") is None  # not cached
    assert cache.get_or_compute(namespace, "k", lambda: "ok", ttl=60) == "ok"  # the next caller computes


@pytest.mark.parametrize("namespace", ["history", "processes"])
def test_a_waiter_behind_a_hung_compute_gives_up_and_computes_itself(
    tmp_path: Path, clock: Clock, namespace: str
) -> None:
    cache = Cache(tmp_path / "cache", clock=clock, compute_wait=0.05)
    leader_in = threading.Event()
    release = threading.Event()
    leader_result: list[str] = []

    def hung() -> str:
        leader_in.set()
        release.wait(timeout=30)
        return "late"

    leader = threading.Thread(
        target=lambda: leader_result.append(cache.get_or_compute(namespace, "k", hung, ttl=60))
    )
    leader.start()
    try:
        assert leader_in.wait(timeout=10)
        assert cache.get_or_compute(namespace, "k", lambda: "own", ttl=60) == "own"
        assert cache.get(namespace, "k") == "own"
    finally:
        release.set()
        leader.join(timeout=10)
        cache.close()
    assert leader_result == ["late"]


@pytest.mark.parametrize("namespace", ["history", "processes"])
def test_an_answer_computed_across_an_invalidation_is_not_stored(cache: Cache, namespace: str) -> None:
    def read_then_a_write_lands() -> str:
        answer = "read before the write"
        cache.invalidate(namespace)  # e.g. a minute written, a signal sent, while this was computing
        return answer

    assert cache.get_or_compute(namespace, "k", read_then_a_write_lands, ttl=60) == "read before the write"
    assert cache.get(namespace, "k") is None
    assert cache.get_or_compute(namespace, "k", lambda: "fresh", ttl=60) == "fresh"
    assert cache.get(namespace, "k") == "fresh"


def test_stats_count_hits_misses_entries_and_bytes(cache: Cache) -> None:
    for key in ("a", "b", "c"):
        cache.get_or_compute("history", key, lambda: "x" * 1000, ttl=None)
    cache.get_or_compute("history", "a", lambda: "never", ttl=None)
    cache.get("history", "missing")
    cache.get_or_compute("processes", "snapshot", lambda: [("p",) * 3] * 10, ttl=1)
    history = stats_of(cache, "history")
    assert (history.hits, history.misses, history.entries) == (1, 4, 3)
    assert history.bytes > 0 and (history.state, history.reason, history.storage) == ("ok", None, "disk")
    processes = stats_of(cache, "processes")
    assert (processes.misses, processes.entries, processes.storage) == (1, 1, "memory")
    assert processes.bytes > 0
    assert stats_of(cache, "host").entries == 0  # memory namespaces are listed even unused

    # Entries and bytes come from the file: another process sees them too (its own counters are 0).
    other = Cache(cache.directory)
    seen = stats_of(other, "history")
    assert (seen.hits, seen.misses, seen.entries, seen.bytes) == (0, 0, 3, history.bytes)


def test_clear_empties_every_namespace_while_another_process_has_the_cache_open(
    cache: Cache, tmp_path: Path
) -> None:
    cache.set("history", "k", 1, ttl=None)
    cache.set("plugin:demo", "k", 2, ttl=None)
    cache.set("processes", "k", 3, ttl=None)
    other = Cache(tmp_path / "cache")  # e.g. `nox-ui cache clear` beside the running panel
    assert other.clear() == 2
    other.close()
    assert cache.get("history", "k") is None and cache.get("plugin:demo", "k") is None
    cache.set("history", "k", 4, ttl=None)  # the panel's open cache goes on working
    assert cache.get("history", "k") == 4
    assert cache.clear() == 2  # its own memory namespace too


# -- JSON only, never pickle --------------------------------------------------------------------------


def test_values_are_json_and_nothing_is_pickled(cache: Cache, tmp_path: Path) -> None:
    cache.set("history", "small", [(1, 2.5), {"a": None}], ttl=60)
    cache.set("history", "large", [os.urandom(40_000).hex()], ttl=60)  # > 32 KiB compressed: in a file
    assert cache.get("history", "small") == [[1, 2.5], {"a": None}]  # JSON: tuples come back as lists
    assert [len(text) for text in cache.get("history", "large") or []] == [80_000]
    with pytest.raises(TypeError):
        cache.set("history", "object", object(), ttl=60)
    with pytest.raises(TypeError):
        cache.get_or_compute("history", "set", lambda: {1, 2}, ttl=60)
    assert cache.get("history", "object") is None

    stored = rows(tmp_path / "cache")
    assert len(stored) == 2
    # Keys raw, values bytes of compressed JSON (in the row or a file): no pickle mode anywhere.
    assert {raw for raw, *_ in stored} == {1}
    assert {mode for _, mode, *_ in stored} == {diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY}


class Planted:
    """What an attacker with write access to the cache folder could plant: unpickling runs code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(PLANTED_MARKER[0]),))


PLANTED_MARKER: list[str] = []


def test_a_pickled_value_planted_in_the_file_is_refused_not_loaded(
    cache: Cache, tmp_path: Path, warnings: list[str]
) -> None:
    marker = tmp_path / "pwned"
    PLANTED_MARKER[:] = [str(marker)]
    cache.set("history", "k", "honest", ttl=None)
    with sqlite3.connect(tmp_path / "cache" / DB_FILE) as db:
        db.execute(
            "UPDATE Cache SET mode = ?, value = ?", (diskcache.core.MODE_PICKLE, pickle.dumps(Planted()))
        )
    assert cache.get("history", "k") is None
    assert not marker.exists()
    assert any("unreadable entry" in message for message in warnings)
    assert rows(tmp_path / "cache") == []  # dropped
    assert cache.get_or_compute("history", "k", lambda: "again", ttl=None) == "again"


@pytest.mark.parametrize("escape", ["absolute", "relative"])
def test_a_value_file_outside_the_cache_planted_in_the_file_is_refused_and_kept(
    cache: Cache, tmp_path: Path, warnings: list[str], escape: str
) -> None:
    victim = tmp_path / "data" / "nox.db"
    victim.parent.mkdir()
    victim.write_bytes(b"the panel's database")
    named = str(victim) if escape == "absolute" else os.path.join("..", "data", "nox.db")
    cache.set("history", "k", "honest", ttl=None)
    cache.set("history", "other", "honest too", ttl=None)
    with sqlite3.connect(tmp_path / "cache" / DB_FILE) as db:
        db.execute("UPDATE Cache SET mode = ?, filename = ?", (diskcache.core.MODE_BINARY, named))
    assert cache.get("history", "k") is None  # refused, not read
    assert any("unreadable entry" in message for message in warnings)
    cache.invalidate("history")  # drops the other planted row the way diskcache removes files
    cache.clear()
    assert victim.read_bytes() == b"the panel's database"
    assert rows(tmp_path / "cache") == []
    assert any("a file this cache never wrote" in message for message in warnings)


def test_a_large_value_in_its_own_file_still_round_trips(cache: Cache, tmp_path: Path) -> None:
    big = [os.urandom(8).hex() for _ in range(20_000)]  # compressed JSON above diskcache's 32 KB row limit
    cache.set("history", "big", big, ttl=None)
    ((_, mode, _, filename),) = rows(tmp_path / "cache")
    assert mode == diskcache.core.MODE_BINARY and filename is not None
    assert cache.get("history", "big") == big
    cache.invalidate("history", "big")
    assert not (tmp_path / "cache" / filename).exists()  # its own files are still removed


# -- a broken cache ------------------------------------------------------------------------------------


def test_a_corrupt_cache_file_is_moved_aside_and_recreated(tmp_path: Path, warnings: list[str]) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / DB_FILE).write_bytes(b"this is not a database " * 500)
    cache = Cache(directory)
    try:
        compute = Counter([1, 2, 3])
        assert cache.get_or_compute("history", "k", compute, ttl=None) == [1, 2, 3]
        assert cache.get_or_compute("history", "k", compute, ttl=None) == [1, 2, 3]
        assert compute.calls == 1  # cached in the new file
        assert stats_of(cache, "history").state == "ok"
        assert any("damaged" in message for message in warnings)
        aside = tmp_path / "cache.corrupt" / DB_FILE
        assert aside.read_bytes().startswith(b"this is not a database")
        assert (directory / DB_FILE).stat().st_mode & 0o777 == 0o600
        assert directory.stat().st_mode & 0o777 == 0o700
    finally:
        cache.close()


def test_an_unusable_cache_folder_is_bypassed_then_tried_again(
    tmp_path: Path, clock: Clock, warnings: list[str]
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    cache = Cache(blocker / "cache", clock=clock)
    compute = Counter("direct")
    assert cache.get_or_compute("history", "k", compute, ttl=None) == "direct"
    assert cache.get_or_compute("history", "k", compute, ttl=None) == "direct"
    assert compute.calls == 2  # computed directly each time, no error for the caller
    stats = stats_of(cache, "history")
    assert stats.state == "bypassed" and stats.reason and "Not a directory" in stats.reason
    assert (stats.hits, stats.misses) == (0, 2)
    assert sum("bypassed" in message for message in warnings) == 1  # one warning, not one per call
    with pytest.raises(OSError, match="not usable"):
        cache.clear()

    blocker.unlink()
    blocker.mkdir()
    clock.now += 59  # not yet retried
    cache.get_or_compute("history", "k", compute, ttl=None)
    assert stats_of(cache, "history").state == "bypassed"
    clock.now += 2
    cache.get_or_compute("history", "k", compute, ttl=None)
    cache.get_or_compute("history", "k", compute, ttl=None)
    assert compute.calls == 4
    assert stats_of(cache, "history").state == "ok"
    cache.close()


def test_a_full_disk_bypasses_the_cache(cache: Cache, warnings: list[str]) -> None:
    cache.set("history", "first", "x", ttl=None)
    disk = cache._open_disk()
    assert disk is not None
    # SQLite's own limit on this connection: the next page it needs fails with SQLITE_FULL (as ENOSPC).
    (pages,) = disk._sql("PRAGMA page_count").fetchone()
    disk._sql(f"PRAGMA max_page_count = {pages}")
    compute = Counter([os.urandom(10_000).hex()])  # ~10 KiB compressed: in the database, needing pages
    assert cache.get_or_compute("history", "big", compute, ttl=None) == compute.value
    stats = stats_of(cache, "history")
    assert stats.state == "bypassed" and stats.reason and "full" in stats.reason
    assert cache.get_or_compute("history", "big", compute, ttl=None) == compute.value
    assert compute.calls == 2
    assert any("bypassed" in message for message in warnings)


def test_a_memory_only_cache_never_touches_the_disk(tmp_path: Path) -> None:
    cache = Cache(None)
    cache.set("history", "k", object(), ttl=None)  # anything goes: nothing is encoded
    assert cache.get("history", "k") is not None
    assert {stats.storage for stats in cache.stats()} == {"memory"}
    assert cache.clear() == 1
    assert list(tmp_path.iterdir()) == []


def test_the_040_cache_folders_are_removed_when_the_cache_opens(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    for legacy in ("history", "plugins/demo"):
        (directory / legacy).mkdir(parents=True)
        (directory / legacy / DB_FILE).write_bytes(b"old")
    cache = Cache(directory)
    cache.set("history", "k", 1, ttl=None)
    cache.close()
    assert sorted(path.name for path in directory.iterdir()) == [DB_FILE]
