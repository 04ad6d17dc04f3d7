"""The process view's service and API, against real child processes of the test run.

Only the children started here are ever signalled; every one is killed and reaped at teardown. They
start in a session of their own: the service refuses to signal the panel's (here: pytest's) own
process group (tests/test_process_safety.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from nox_ui.app import Services
from nox_ui.components.format import format_bytes
from nox_ui.errors import Forbidden, Invalid, NotFound
from nox_ui.roles import Principal, Role
from nox_ui.services.processes import MIN_CPU_INTERVAL, SNAPSHOT_SECONDS, ProcessInfo, ProcessService
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer

SLEEPER = "import time; time.sleep(300)"
SPINNER = "import time\nend = time.time() + 300\nwhile time.time() < end: pass"

Spawn = Callable[..., "tuple[subprocess.Popen[bytes], str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a child (`python -c CODE MARKER`); returns it and its unique command-line marker."""
    children: list[subprocess.Popen[bytes]] = []

    def start(code: str = SLEEPER) -> tuple[subprocess.Popen[bytes], str]:
        marker = f"nox-test-{uuid.uuid4().hex}"
        child = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
        children.append(child)
        return child, marker

    try:
        yield start
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)


OPERATOR = Principal(user_id=2, username="olga", role=Role.OPERATOR)
VIEWER = Principal(user_id=3, username="victor", role=Role.VIEWER)


# -- format_bytes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1.0 MiB"),  # would round to 1024.0 KiB
        (5 * 1024**2 + 300 * 1024, "5.3 MiB"),
        (1024**3, "1.0 GiB"),
        (int(2.25 * 1024**3), "2.2 GiB"),  # round-half-even of 2.25
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**5, "2048.0 PiB"),
        (-1536, "-1.5 KiB"),
        (1536.7, "1.5 KiB"),
    ],
)
def test_format_bytes(n: float, text: str) -> None:
    assert format_bytes(n) == text


# -- the service ----------------------------------------------------------------------------------


def test_a_child_is_found_by_pid_and_by_its_command_line(spawn: Spawn) -> None:
    child, marker = spawn()
    service = ProcessService()
    by_pid = service.list(OPERATOR, q=str(child.pid), limit=1000)
    assert child.pid in [p.pid for p in by_pid.items]
    by_marker = service.list(OPERATOR, q=marker.upper(), limit=1000)  # case-insensitive
    assert by_marker.total == 1
    (info,) = by_marker.items
    assert info.pid == child.pid
    assert marker in info.cmdline and not info.cmdline_hidden
    assert info.name.startswith("python")
    assert info.username == psutil.Process().username()
    assert info.rss_bytes and info.rss_bytes > 0
    assert info.num_threads and info.num_threads >= 1
    assert info.create_time and abs(info.create_time - time.time()) < 60
    assert info.cpu_percent == 0.0  # the first listing has nothing to compare with


def cpu_seconds(pid: int) -> float:
    used = psutil.Process(pid).cpu_times()
    return float(used.user + used.system)


def test_cpu_percent_is_measured_between_listings_and_vanished_pids_drop_out(spawn: Spawn) -> None:
    child, marker = spawn(SPINNER)
    service = ProcessService()
    started = time.monotonic()
    assert service.list(OPERATOR, q=marker).items[0].cpu_percent == 0.0
    listed = time.monotonic()
    before = cpu_seconds(child.pid)
    # However busy the machine, the spinner gets some CPU: wait for 0.3 s of it, not for a wall-clock time,
    # and for the service's minimum interval and shared snapshot (a listing sooner reuses the first readings).
    wait = max(MIN_CPU_INTERVAL, SNAPSHOT_SECONDS)
    while cpu_seconds(child.pid) - before < 0.3 or time.monotonic() - listed < wait:
        time.sleep(0.05)
    used = cpu_seconds(child.pid) - before
    (busy,) = service.list(OPERATOR, q=marker).items
    elapsed = time.monotonic() - started
    # The listings bracket these readings: at least `used` CPU seconds over at most `elapsed` wall seconds
    # (rounded to 0.1 by the service).
    assert busy.cpu_percent is not None and busy.cpu_percent >= 100 * used / elapsed - 0.05
    # A listing right after the last reuses its readings instead of measuring over milliseconds.
    assert service.list(OPERATOR, q=marker).items[0].cpu_percent == busy.cpu_percent
    child.kill()
    child.wait(timeout=5)
    time.sleep(SNAPSHOT_SECONDS)  # listings within one interval share a reading; the next one is new
    assert service.list(OPERATOR, q=marker).total == 0
    assert child.pid not in service._procs


def test_sorting_and_paging_happen_in_the_service(spawn: Spawn) -> None:
    spawn()
    spawn()
    service = ProcessService()
    ascending = [p.pid for p in service.list(VIEWER, sort="pid", limit=1000, descending=False).items]
    assert ascending == sorted(ascending)
    descending = [p.pid for p in service.list(VIEWER, sort="pid", limit=1000).items]
    assert descending == sorted(descending, reverse=True)
    page = service.list(VIEWER, sort="pid", limit=2, offset=1, descending=False)
    assert page.total >= 3
    assert [p.pid for p in page.items] == sorted(p.pid for p in page.items)
    assert len(page.items) == 2
    names = [p.name.casefold() for p in service.list(VIEWER, sort="name", limit=1000, descending=False).items]
    assert names == sorted(names)
    # Every key orders by what it names (ties by pid), unknown values last when descending.
    attribute: dict[str, Callable[[ProcessInfo], Any]] = {
        "user": lambda p: p.username.casefold(),
        "cpu": lambda p: p.cpu_percent,
        "memory": lambda p: p.memory_percent,
        "rss": lambda p: p.rss_bytes,
        "threads": lambda p: p.num_threads,
        "start": lambda p: p.create_time,
    }
    for key, value_of in attribute.items():
        for high_first in (True, False):
            items = service.list(VIEWER, sort=key, limit=1000, descending=high_first).items
            assert len(items) >= 3, key
            values = [value_of(p) for p in items]
            known = [(value_of(p), p.pid) for p in items if value_of(p) is not None]
            assert known == sorted(known, reverse=high_first), (key, high_first)
            # A process whose numbers the OS refused: after all known ones descending, before them ascending.
            unknown = [i for i, value in enumerate(values) if value is None]
            where = range(len(values) - len(unknown), len(values)) if high_first else range(len(unknown))
            assert unknown == list(where), (key, high_first)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sort": "colour"}, "unknown sort key 'colour' (choose one of: pid, name, user, cpu, memory, rss"),
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"offset": -1}, "offset must be 0 or more"),
    ],
)
def test_bad_listing_arguments_are_invalid(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as raised:
        ProcessService().list(VIEWER, **kwargs)
    assert message in raised.value.message


def test_details_of_a_child_and_of_a_vanished_pid(spawn: Spawn) -> None:
    child, marker = spawn()
    details = ProcessService().details(OPERATOR, child.pid)
    assert details.info.pid == child.pid
    assert details.ppid == os.getpid()
    assert details.info.cmdline.endswith(marker)
    assert details.children == 0
    assert details.open_files is not None
    assert details.connections == 0
    assert details.cwd == os.getcwd()
    assert details.exe and "python" in details.exe
    child.kill()
    child.wait(timeout=5)
    with pytest.raises(NotFound, match=f"process {child.pid} no longer exists"):
        ProcessService().details(OPERATOR, child.pid)


def test_signal_rules_and_the_one_record_of_every_attempt(
    spawn: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    child, _ = spawn()
    service = ProcessService()
    records: list[tuple[Any, ...]] = []
    monkeypatch.setattr(service, "_record_signal", lambda *args, **kwargs: records.append((*args, kwargs)))

    with pytest.raises(Forbidden, match="operator"):
        service.signal(VIEWER, child.pid, "TERM")
    with pytest.raises(Invalid, match="choose one of: TERM, KILL"):
        service.signal(OPERATOR, child.pid, "HUP")
    with pytest.raises(Invalid, match="this panel's own process"):
        service.signal(OPERATOR, os.getpid(), "TERM", ip="192.0.2.4")
    with pytest.raises(Invalid, match="init process"):
        service.signal(OPERATOR, 1, "KILL")
    with pytest.raises(Invalid, match="not a single process"):
        service.signal(OPERATOR, -1, "KILL")
    with pytest.raises(NotFound, match=f"process {child.pid} no longer exists"):  # pid reused since
        service.signal(OPERATOR, child.pid, "KILL", create_time=123.0)
    assert child.poll() is None

    with monkeypatch.context() as patched:

        def refuse(self: psutil.Process, sig: int) -> None:
            raise psutil.AccessDenied(self.pid)

        patched.setattr(psutil.Process, "send_signal", refuse)
        with pytest.raises(Forbidden) as denied:
            service.signal(OPERATOR, child.pid, "TERM")
    assert denied.value.message == (
        f"not permitted to signal process {child.pid} ({psutil.Process(child.pid).name()}); "
        f"the panel runs as {psutil.Process().username()}"
    )
    assert child.poll() is None

    info = service.signal(OPERATOR, child.pid, "term")
    assert info.pid == child.pid
    assert child.wait(timeout=5) == -15

    outcomes = [(r[1], r[3], r[4]) for r in records]
    assert outcomes == [
        (child.pid, "TERM", "denied"),
        (child.pid, "HUP", "failure"),
        (os.getpid(), "TERM", "denied"),
        (1, "KILL", "denied"),
        (-1, "KILL", "denied"),
        (child.pid, "KILL", "failure"),
        (child.pid, "TERM", "denied"),
        (child.pid, "TERM", "success"),
    ]
    assert records[0][0] == VIEWER and records[-1][0] == OPERATOR
    assert records[-1][2].startswith("python") and records[-1][5] is None
    assert "not permitted" in records[-2][5]
    assert [r[6].get("rule") for r in records[2:5]] == ["panel", "init", "not-a-process"]
    assert records[2][6]["ip"] == "192.0.2.4"


# -- the API --------------------------------------------------------------------------------------


def test_api_lists_finds_and_sorts(api: TestClient, spawn: Spawn) -> None:
    child, marker = spawn()
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    operator = bearer(api, "olga", OPERATOR_PASSWORD)
    found = api.get("/api/v1/processes", params={"q": marker}, headers=operator)
    assert found.status_code == 200
    assert found.json()["total"] == 1
    (item,) = found.json()["items"]
    assert item["pid"] == child.pid
    assert set(item) == {
        "pid",
        "name",
        "username",
        "cpu_percent",
        "memory_percent",
        "rss_bytes",
        "status",
        "num_threads",
        "create_time",
        "cmdline",
        "cmdline_hidden",
    }
    assert item["cmdline"].endswith(marker) and item["cmdline_hidden"] is False
    by_pid = api.get("/api/v1/processes", params={"q": str(child.pid)}, headers=headers).json()
    assert child.pid in [p["pid"] for p in by_pid["items"]]

    for order, reverse in (("asc", False), ("desc", True)):
        body = api.get(
            "/api/v1/processes", params={"sort": "pid", "order": order, "limit": 1000}, headers=headers
        ).json()
        pids = [p["pid"] for p in body["items"]]
        assert pids == sorted(pids, reverse=reverse)
        assert body["total"] >= len(pids) >= 2
    paged = api.get("/api/v1/processes", params={"limit": 2, "offset": 1}, headers=headers).json()
    assert len(paged["items"]) == 2


def test_api_bad_listing_arguments_are_422(api: TestClient) -> None:
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    bad_sort = api.get("/api/v1/processes", params={"sort": "colour"}, headers=headers)
    assert bad_sort.status_code == 422
    assert "choose one of: pid, name, user, cpu, memory, rss, threads, start" in bad_sort.json()["detail"]
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -5}):
        response = api.get("/api/v1/processes", params=params, headers=headers)
        assert response.status_code == 422, params
        assert isinstance(response.json()["detail"], str)
    for malformed in ({"limit": "many"}, {"order": "sideways"}):
        response = api.get("/api/v1/processes", params=malformed, headers=headers)
        assert response.status_code == 422, malformed
        assert isinstance(response.json()["detail"], list)
    assert api.get("/api/v1/processes").status_code == 401


def test_api_signals(api: TestClient, spawn: Spawn) -> None:
    child, _ = spawn()
    url = f"/api/v1/processes/{child.pid}/signal"
    viewer = bearer(api, "victor", VIEWER_PASSWORD)
    operator = bearer(api, "olga", OPERATOR_PASSWORD)

    refused = api.post(url, json={"signal": "TERM"}, headers=viewer)
    assert refused.status_code == 403
    assert "operator" in refused.json()["detail"]
    assert child.poll() is None

    assert api.post(url, json={"signal": "HUP"}, headers=operator).status_code == 422
    assert api.post(url, json={}, headers=operator).status_code == 422
    own = api.post(f"/api/v1/processes/{os.getpid()}/signal", json={"signal": "TERM"}, headers=operator)
    assert own.status_code == 422
    assert "own process" in own.json()["detail"]
    assert (
        api.post("/api/v1/processes/1/signal", json={"signal": "KILL"}, headers=operator).status_code == 422
    )

    terminated = api.post(url, json={"signal": "TERM"}, headers=operator)
    assert terminated.status_code == 200
    assert terminated.json()["pid"] == child.pid
    assert child.wait(timeout=5) == -15
    again = api.post(url, json={"signal": "TERM"}, headers=operator)
    assert again.status_code == 404
    assert again.json() == {"detail": f"process {child.pid} no longer exists"}

    stubborn, _ = spawn("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)")
    killed = api.post(f"/api/v1/processes/{stubborn.pid}/signal", json={"signal": "KILL"}, headers=operator)
    assert killed.status_code == 200
    assert stubborn.wait(timeout=5) == -9


def test_api_forbidden_by_the_os_is_403_with_the_reason(
    api: TestClient, spawn: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    child, _ = spawn()

    def refuse(self: psutil.Process, sig: int) -> None:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "send_signal", refuse)
    response = api.post(
        f"/api/v1/processes/{child.pid}/signal",
        json={"signal": "KILL"},
        headers=bearer(api, "olga", OPERATOR_PASSWORD),
    )
    assert response.status_code == 403
    assert response.json()["detail"].startswith(f"not permitted to signal process {child.pid} (python")
    assert "the panel runs as" in response.json()["detail"]
    assert child.poll() is None


def test_services_carry_one_process_service(accounts: Services) -> None:
    assert isinstance(accounts.processes, ProcessService)


def test_openapi_lists_the_process_routes(api: TestClient) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert {"/processes", "/processes/{pid}/signal"} <= set(paths)
