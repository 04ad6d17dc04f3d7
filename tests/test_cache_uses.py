"""Where the cache is used: history ranges (invalidated by writes), the process snapshot shared by every
viewer, host facts, plugins' `ctx.cache`, `nox-ui cache clear`, /metrics; and nothing at idle opens it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient
from nicegui.testing import User

import nox_ui.services.processes as processes_module
from nox_ui.app import Services
from nox_ui.cache import Cache, CacheStats
from nox_ui.metrics.history import HOUR, MINUTE, HistoryStore
from nox_ui.metrics.host import FACTS_TTL, host_facts
from nox_ui.plugins.context import PluginContext
from nox_ui.plugins.spec import PluginInfo
from nox_ui.prometheus import build_registry, render
from nox_ui.roles import Principal, Role
from nox_ui.services.processes import SNAPSHOT_SECONDS, ProcessService
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer
from tests.test_cache import Clock
from tests.test_cli import run
from tests.test_prometheus import promtool, wait_for_sample

ROOT = Path(__file__).resolve().parent.parent
CPU = "cpu.percent"
OPERATOR = Principal(user_id=2, username="olga", role=Role.OPERATOR)
VIEWER = Principal(user_id=3, username="victor", role=Role.VIEWER)


def stats_of(cache: Cache, namespace: str) -> CacheStats:
    (found,) = [stats for stats in cache.stats() if stats.namespace == namespace]
    return found


# -- history --------------------------------------------------------------------------------------------


def write_minutes(store: HistoryStore, start: int, count: int, value: float) -> None:
    store.write([(start + i * MINUTE, {CPU: (value, value, value)}) for i in range(count)])


@pytest.fixture
def start() -> int:
    """Three hours ago, on an hour: two-hour ranges from there are minute-tier and end before now."""
    return (int(time.time()) // HOUR - 3) * HOUR


def test_a_written_minute_invalidates_the_live_range_but_not_a_settled_one(
    services: Services, tmp_path: Path, start: int
) -> None:
    cache = Cache(tmp_path / "cache")
    store = HistoryStore(services.db, cache)
    try:
        write_minutes(store, start, 60, 10.0)
        live = (start, start + 2 * HOUR)  # reaches past the last written minute
        settled = (start, start + 30 * MINUTE)
        assert len(store.query(CPU, *live).points) == 60
        assert len(store.query(CPU, *settled).points) == 30
        assert len(store.query(CPU, *settled).points) == 30
        assert stats_of(cache, "history").hits == 1
        assert stats_of(cache, "history.live").entries == 1

        write_minutes(store, start + HOUR, 1, 20.0)
        assert stats_of(cache, "history.live").entries == 0  # dropped by the write
        assert stats_of(cache, "history").entries == 1  # a settled range is not
        points = store.query(CPU, *live).points
        assert len(points) == 61 and points[-1][1:] == (20.0, 20.0, 20.0)
        assert store.query(CPU, *live).points == points  # cached again, until the next write
        assert stats_of(cache, "history.live").hits == 1
    finally:
        cache.close()


def test_after_a_restart_a_write_is_seen_though_the_old_live_entry_stays_on_disk(
    services: Services, tmp_path: Path, start: int
) -> None:
    first_cache = Cache(tmp_path / "cache")
    first = HistoryStore(services.db, first_cache)
    write_minutes(first, start, 10, 10.0)
    live = (start, start + 2 * HOUR)
    assert len(first.query(CPU, *live).points) == 10
    first_cache.close()

    cache = Cache(tmp_path / "cache")  # the next process: it stored nothing, so it invalidates nothing
    again = HistoryStore(services.db, cache)
    try:
        assert len(again.query(CPU, *live).points) == 10
        assert stats_of(cache, "history.live").hits == 1  # the previous process's answer, still right
        write_minutes(again, start + 10 * MINUTE, 1, 30.0)
        # The key holds the write mark: the old entry is never read again.
        assert len(again.query(CPU, *live).points) == 11
    finally:
        cache.close()


# -- the process snapshot ------------------------------------------------------------------------------


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per full reading of the process table (each starts with `psutil.pids()`)."""
    calls: list[int] = []
    real = psutil.pids

    def counted() -> list[int]:
        calls.append(1)
        return real()

    monkeypatch.setattr(psutil, "pids", counted)
    return calls


Spawn = Callable[[], "tuple[subprocess.Popen[bytes], str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    children: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], str]:
        marker = f"nox-cache-test-{uuid.uuid4().hex}"
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)", marker], start_new_session=True
        )
        children.append(child)
        return child, marker

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def test_viewers_within_one_interval_share_one_reading_each_with_their_own_rights(
    readings: list[int], spawn: Spawn
) -> None:
    clock = Clock()
    service = ProcessService(cache=Cache(None, clock=clock))
    child, marker = spawn()
    pages: dict[str, Any] = {}

    def open_page(name: str, who: Principal) -> None:  # what each processes page does per refresh
        pages[name] = service.list(who, q=marker)

    viewers = [
        threading.Thread(target=open_page, args=(f"{role}{n}", who))
        for n in range(4)
        for role, who in (("operator", OPERATOR), ("viewer", VIEWER))
    ]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(timeout=30)
    assert len(readings) == 1
    assert all(pages[f"operator{n}"].items[0].pid == child.pid for n in range(4))
    # A viewer's copy hides the arguments, so its search cannot match the marker in them.
    assert all(pages[f"viewer{n}"].total == 0 for n in range(4))
    operator_view = service.list(OPERATOR, q=str(child.pid)).items[0]
    viewer_view = service.list(VIEWER, q=str(child.pid)).items[0]
    assert marker in operator_view.cmdline and not operator_view.cmdline_hidden
    assert marker not in viewer_view.cmdline and viewer_view.cmdline_hidden
    assert len(readings) == 1

    newcomer, new_marker = spawn()
    assert service.list(OPERATOR, q=new_marker).total == 0  # same interval: the shared reading
    clock.now += SNAPSHOT_SECONDS
    assert service.list(OPERATOR, q=new_marker).items[0].pid == newcomer.pid  # the next interval
    assert len(readings) == 2


def test_a_signal_sent_through_the_service_shows_in_the_next_listing(spawn: Spawn) -> None:
    service = ProcessService(cache=Cache(None, clock=Clock()))  # the clock never moves
    child, marker = spawn()
    assert service.list(OPERATOR, q=marker).total == 1
    service.signal(OPERATOR, child.pid, "KILL")
    child.wait(timeout=10)
    assert service.list(OPERATOR, q=marker).total == 0  # read again, though the interval is not over


def test_api_callers_within_one_interval_share_one_reading(
    api: TestClient, accounts: Services, readings: list[int], monkeypatch: pytest.MonkeyPatch, spawn: Spawn
) -> None:
    monkeypatch.setattr(processes_module, "SNAPSHOT_SECONDS", 3600.0)  # one interval covers the test
    child, marker = spawn()
    operator = bearer(api, "olga", OPERATOR_PASSWORD)
    viewer = bearer(api, "victor", VIEWER_PASSWORD)
    by_operator = api.get("/api/v1/processes", params={"q": marker}, headers=operator)
    by_viewer = api.get("/api/v1/processes", params={"q": str(child.pid)}, headers=viewer)
    sorted_page = api.get("/api/v1/processes", params={"sort": "pid", "limit": 5}, headers=viewer)
    assert [r.status_code for r in (by_operator, by_viewer, sorted_page)] == [200, 200, 200]
    assert by_operator.json()["items"][0]["pid"] == child.pid
    assert by_viewer.json()["items"][0]["cmdline_hidden"] is True
    assert len(readings) == 1
    assert stats_of(accounts.cache, "processes").hits == 2


# -- host facts, plugins -------------------------------------------------------------------------------


def test_host_facts_are_read_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    import nox_ui.metrics.host as host_module

    clock = Clock()
    cache = Cache(None, clock=clock)
    reads: list[int] = []
    real = host_module.read_host_facts

    def counted() -> host_module.HostFacts:
        reads.append(1)
        return real()

    monkeypatch.setattr(host_module, "read_host_facts", counted)
    first = host_facts(cache)
    assert host_facts(cache) is first and first.threads >= 1
    clock.now += FACTS_TTL
    assert host_facts(cache) == first
    assert len(reads) == 2


def test_a_plugins_cache_is_its_own_namespace_of_json_values(services: Services, tmp_path: Path) -> None:
    def context(name: str) -> PluginContext:
        return PluginContext(
            PluginInfo(name=name),
            data_root=tmp_path / "plugin-data",
            cache=services.cache,
            audit=services.audit,
            metrics=services.metrics,
            settings=services.plugin_settings,
        )

    demo, other = context("demo"), context("other")
    assert demo.cache.set("answer", {"value": 42}, expire=60) is True
    other.cache.set("answer", "theirs")
    assert demo.cache.get("answer") == {"value": 42}
    assert other.cache.get("answer") == "theirs"
    assert demo.cache.get("missing", default="fallback") == "fallback"
    with pytest.raises(TypeError):
        demo.cache.set("bad", object())
    with pytest.raises(TypeError):
        demo.cache.get(42)  # type: ignore[arg-type]
    demo.cache.delete("answer")
    assert demo.cache.get("answer") is None
    demo.cache.set("a", 1)
    demo.cache.clear()
    assert demo.cache.get("a") is None and other.cache.get("answer") == "theirs"
    namespaces = {stats.namespace for stats in services.cache.stats()}
    assert {"plugin:demo", "plugin:other"} <= namespaces
    demo.close()
    assert demo.cache.get("missing") is None  # usable again after a reload


# -- the command line and /metrics ------------------------------------------------------------------------


def test_cache_clear_empties_every_namespace_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    running = Cache(data_dir / "cache")  # a panel that keeps the cache open meanwhile
    running.set("history", "a", [1], ttl=None)
    running.set("search", "b", {"c": 2}, ttl=None)
    running.set("plugin:demo", "d", 3, ttl=None)
    code, out, err = run(["cache", "clear"], capsys, monkeypatch)
    assert (code, err) == (0, "")
    assert out == f"cache cleared: 3 entries removed from {data_dir / 'cache'}\n"
    assert running.get("history", "a") is None
    running.set("history", "a", [2], ttl=None)
    assert running.get("history", "a") == [2]
    running.close()

    code, out, _ = run(["cache", "clear"], capsys, monkeypatch)
    assert code == 0 and "1 entries removed" in out


def test_cache_clear_on_an_unusable_cache_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    (data_dir / "cache" / "cache.db").mkdir(parents=True)  # where SQLite wants a file
    code, out, err = run(["cache", "clear"], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert err.startswith("nox-ui: error: the cache in ") and "not usable" in err
    assert err.count("\n") == 1


def test_metrics_expose_the_cache_per_namespace_and_pass_promtool(services: Services) -> None:
    tool = promtool()
    services.cache.get_or_compute("history", "k", lambda: [1, 2, 3], ttl=None)
    services.cache.get_or_compute("history", "k", lambda: [1, 2, 3], ttl=None)
    services.cache.get_or_compute("processes", "snapshot", lambda: ["p"], ttl=1)
    services.metrics.sampler.sample()
    text = render(build_registry(services.metrics, services.cache)).decode()
    assert 'nox_cache_hits_total{namespace="history"} 1.0' in text
    assert 'nox_cache_misses_total{namespace="history"} 1.0' in text
    assert 'nox_cache_entries{namespace="history"} 1.0' in text
    assert 'nox_cache_entries{namespace="processes"} 1.0' in text
    assert 'nox_cache_bypassed{namespace="history"} 0.0' in text
    assert "# TYPE nox_cache_bytes gauge" in text
    checked = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0 and problems.strip() == "", problems


async def test_the_served_metrics_route_includes_the_cache(app_user: User, accounts: Services) -> None:
    await wait_for_sample(accounts)
    accounts.config.metrics_public = True
    response = await app_user.http_client.get("/metrics")
    assert response.status_code == 200
    assert 'nox_cache_entries{namespace="processes"}' in response.text


# -- idle ----------------------------------------------------------------------------------------------------


def test_an_idle_panel_never_imports_diskcache_until_history_is_asked(tmp_path: Path) -> None:
    """Minute writes, prunes, process listings, host facts and scrapes use no disk namespace: diskcache
    (and its pickle machinery) stays out of an idle panel's memory; the first history query loads it."""
    from nox_ui.config import Settings
    from nox_ui.server import prepare_core

    prepare_core(Settings(data_dir=tmp_path)).close()
    script = (
        "import sys, json, time\n"
        "from nox_ui.config import Settings\n"
        "from nox_ui.server import prepare\n"
        "from nox_ui.roles import Principal, Role\n"
        "from nox_ui.metrics.host import host_facts\n"
        "from nox_ui.prometheus import build_registry, render\n"
        "services = prepare(Settings())\n"
        "history = services.metrics.history\n"
        "now = int(time.time()) // 60 * 60\n"
        "history.write([(now - 120, {'cpu.percent': (1.0, 1.0, 1.0)})])\n"
        "history.prune()\n"
        "services.processes.list(Principal(user_id=1, username='v', role=Role.VIEWER))\n"
        "host_facts(services.cache)\n"
        "render(build_registry(services.metrics, services.cache))\n"
        "services.cache.stats()\n"
        "idle = 'diskcache' in sys.modules\n"
        "history.query('cpu.percent', now - 7200, now - 3600)\n"
        "asked = 'diskcache' in sys.modules\n"
        "services.close()\n"
        "print(json.dumps([idle, asked]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOX_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [False, True]
