"""Search under pressure (review findings): planted audit words cannot stall fuzzy searches, block
other searches or push a viewer's prefix matches out; a failed rebuild's reason stays with admins;
counts computed across a commit are not cached; other processes' commits and a restored database
reach a running panel's index. Real index folders and a real SQLite file in tmp_path; no timings."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import string
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.roles import PANEL, Role
from nox_ui.search.build import rebuild_index
from nox_ui.search.documents import Document
from nox_ui.search.index import IndexLayout
from nox_ui.search.query import parse
from nox_ui.search.service import CACHE_NAMESPACE, SearchService
from nox_ui.search.whoosh_index import FUZZY_SCAN, WhooshBuilder, WhooshIndex
from nox_ui.server import prepare_core
from tests.test_search import FINDABLE, eventually, found, live, principal

__all__ = ["live"]
VIEWER = frozenset({Role.VIEWER})


def planted(path: Path, events: int, words: Any) -> WhooshIndex:
    """An index of `events` failed sign-ins whose attempted names are `words(i)`, and one alert rule."""
    builder = WhooshBuilder(path)
    docs = [
        Document(
            type="audit",
            id=str(i),
            title="auth.login.failure by anonymous",
            text=f"outcome failure target user {words(i)}",
            url=f"/admin/audit?id={i}",
            role=Role.ADMIN,
            seq=i,
        )
        for i in range(1, events + 1)
    ]
    docs.append(
        Document(
            type="rule",
            id="1",
            title="Disk almost full",
            text="cpu disk.percent > 90",
            url="/alerts",
            role=Role.VIEWER,
        )
    )
    builder.add(docs)
    builder.commit()
    return WhooshIndex(path)


def run(ix: WhooshIndex, q: str, roles: frozenset[Role] = VIEWER) -> Any:
    return ix.search(
        parse(q, {"rule", "audit"}),
        roles,
        type=None,
        offset=0,
        limit=20,
        counts=None,
        fuzzy=None,
        time_limit=5.0,
    )


def test_planted_words_bound_a_fuzzy_search_and_block_no_other_search(tmp_path: Path) -> None:
    rnd = random.Random(1)
    letters = string.ascii_lowercase

    def name(_i: int) -> str:
        return " ".join("a" + "".join(rnd.choice(letters) for _ in range(7)) for _ in range(7))

    ix = planted(tmp_path / "ix", 1500, name)  # ~10,500 words starting with "a"
    try:
        made_up = run(ix, " ".join(f"aqqqqqq{c}" for c in "bcdefghijk"))
        assert not made_up.hits
        assert 0 < ix.fuzzy_scanned <= FUZZY_SCAN  # not every "a" word for each of the ten
        # One search reading (held open here) does not hold up another.
        reading, release, other = threading.Event(), threading.Event(), threading.Event()

        def slow() -> None:
            with ix._reading():
                reading.set()
                release.wait(60)

        holder = threading.Thread(target=slow)
        holder.start()
        try:
            assert reading.wait(60)

            def plain() -> None:
                if run(ix, "cpu").hits:
                    other.set()

            searcher = threading.Thread(target=plain)
            searcher.start()
            searcher.join(60)
            assert other.is_set() and holder.is_alive()  # done while the first was still reading
        finally:
            release.set()
            holder.join(60)
        ix.refresh()  # the writer's refresh needs no searcher back either
        assert [h.title for h in run(ix, "cpu").hits] == ["Disk almost full"]
    finally:
        ix.close()


def test_planted_words_do_not_push_a_viewers_prefix_matches_out(tmp_path: Path) -> None:
    ix = planted(tmp_path / "ix", 60, lambda i: f"disa{i:03d}")
    try:
        assert [h.title for h in run(ix, "dis*").hits] == ["Disk almost full"]
        assert run(ix, "dis*", frozenset(Role)).counts["audit"] == 32  # an admin's expansion still capped
    finally:
        ix.close()


def test_a_failed_rebuilds_reason_is_for_admins_only(services: Services, tmp_path: Path) -> None:
    search = SearchService.offline(services.db, IndexLayout(tmp_path / "empty-index"))
    search._failed = (time.monotonic(), 'File "/srv/nox/db.py", sqlite3.OperationalError: disk I/O error')
    results = search.search_now(PANEL, "cpu")
    assert results.state == "failed"
    assert "sqlite3" not in results.message and "db.py" not in results.message
    assert "diagnostics" in results.message
    assert "sqlite3.OperationalError" in search.status().last_error


def test_counts_computed_across_a_commit_are_not_cached(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = services.search
    assert search.cache is not None
    rebuild_index(services.db, search.layout)
    usable = search.handle.usable()
    assert not isinstance(usable, str)
    index = search.handle.open(*usable)
    original = index.search

    def committed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        search._written(False)  # the writer committed and invalidated while this search ran
        return result

    monkeypatch.setattr(index, "search", committed_meanwhile)
    query = parse("admin", set(search.types()))
    search.search_now(PANEL, "admin")
    key = f"{usable[0].id}:{PANEL.role.value}:{query.normalized}"
    assert search.cache.get(CACHE_NAMESPACE, key) is None
    monkeypatch.setattr(index, "search", original)
    search.search_now(PANEL, "admin")
    assert search.cache.get(CACHE_NAMESPACE, key) is not None  # without a commit in between: cached


async def test_another_processes_commits_reach_a_running_panels_index(
    live: Services, settings: Settings
) -> None:
    live.search.writer.recheck_seconds = 0.2
    live.search.writer._next_check = 0.0
    other = prepare_core(settings)  # `nox-ui users create` beside the panel: no on_commit here
    try:
        other.users.create(PANEL, "outsider", "correct horse battery", Role.VIEWER)
    finally:
        other.close()
    admin = principal(live, "admin")

    async def indexed() -> bool:
        return await found(live, admin, "outsider", "user") == ["outsider"]

    await eventually(indexed, timeout=30, what="the other process's user in the index")


async def test_a_restored_older_audit_log_is_reindexed(live: Services, settings: Settings) -> None:
    writer = live.search.writer
    assert writer.meta is not None
    high = writer.meta.audit_high
    assert high >= 3
    with sqlite3.connect(settings.data_dir / "nox.db") as conn:  # an older copy: its last events absent
        conn.execute("DELETE FROM audit_events WHERE id > ?", (high - 2,))
    await asyncio.to_thread(live.users.create, PANEL, "reborn", "correct horse battery", Role.VIEWER)
    admin = principal(live, "admin")

    async def indexed() -> bool:
        return bool(await found(live, admin, "reborn", "audit"))

    await eventually(indexed, timeout=FINDABLE * 10, what="the new event, its id reused, in the index")
    meta = writer.meta
    assert meta is not None and meta.audit_high < high + 3
