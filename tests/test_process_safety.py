"""Issue #5, holes 1, 10 and 11: the ids a signal may never reach (the panel, its threads, its parent,
its process group, any thread id), the caller's address on every `process.signal` event, and command
lines hidden from viewers.

Every process here is a real one started by the test. A probe answers "pong" to each line on its
stdin and prints "TERM" (then exits) on SIGTERM: a signal that reached it would be reported before
the next "pong", so "still answers pong" proves it received nothing."""

from __future__ import annotations

import json
import os
import select
import signal as signals
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nox_ui.app import Services
from nox_ui.errors import Invalid
from nox_ui.models import AuditEvent
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import RuntimeSettings
from nox_ui.services.processes import ProcessService
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = Principal(user_id=2, username="olga", role=Role.OPERATOR)
VIEWER = Principal(user_id=3, username="victor", role=Role.VIEWER)
ADMIN = Principal(user_id=1, username="admin", role=Role.ADMIN)

PROBE = r"""
import os, signal, sys, threading

def on_term(*_):
    print("TERM", flush=True)
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)
started = threading.Event()
thread_id = []

def worker():
    thread_id.append(threading.get_native_id())
    started.set()
    threading.Event().wait()

threading.Thread(target=worker, daemon=True).start()
started.wait()
print(os.getpid(), thread_id[0], flush=True)
for _ in sys.stdin:
    print("pong", flush=True)
"""


class Probe:
    """A real child process with a second thread; `tid` is that thread's id (not a process id)."""

    def __init__(self, *, own_session: bool, argument: str = "") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE, *([argument] if argument else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=own_session,
        )
        self._buffer = b""
        pid, tid = self.line().split()
        self.pid, self.tid = int(pid), int(tid)
        assert self.pid == self.process.pid and self.tid != self.pid

    def line(self, timeout: float = 15.0) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the probe did not answer in time")
            if select.select([stdout], [], [], remaining)[0]:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    raise AssertionError(f"the probe's output ended (exit code {self.process.poll()})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def received_nothing(self) -> bool:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(b"ping\n")
        except BrokenPipeError:
            return False
        return self.line() == "pong"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    started: list[Probe] = []
    try:
        yield started
    finally:
        for probe in started:
            probe.stop()


def new_probe(probes: list[Probe], *, own_session: bool = True, argument: str = "") -> Probe:
    probe = Probe(own_session=own_session, argument=argument)
    probes.append(probe)
    return probe


def signal_events(services: Services) -> list[AuditEvent]:
    """Oldest first."""
    return list(reversed(services.audit.query(action="process.signal", limit=1000).events))


def detail(event: AuditEvent) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(event.details)
    return details


# -- hole 1: what a signal may never reach --------------------------------------------------------------


def test_a_thread_id_is_refused_and_the_process_itself_is_signalled(
    services: Services, probes: list[Probe]
) -> None:
    probe = new_probe(probes)
    with pytest.raises(Invalid) as refused:
        services.processes.signal(OPERATOR, probe.tid, "TERM", ip="198.51.100.20")
    assert refused.value.message == (
        f"refusing to signal {probe.tid}: it is a thread of process {probe.pid}, not a process "
        f"(signal process {probe.pid} itself if that is what you mean)"
    )
    assert probe.received_nothing()

    services.processes.signal(OPERATOR, probe.pid, "TERM", ip="198.51.100.20")
    assert probe.line() == "TERM"
    assert probe.process.wait(timeout=10) == 0

    thread_event, process_event = signal_events(services)
    assert (thread_event.outcome, thread_event.target_id, thread_event.source_ip) == (
        "denied",
        str(probe.tid),
        "198.51.100.20",
    )
    assert detail(thread_event)["rule"] == "thread"
    assert (process_event.outcome, process_event.target_id, process_event.source_ip) == (
        "success",
        str(probe.pid),
        "198.51.100.20",
    )


def test_a_process_in_the_panels_process_group_is_refused(services: Services, probes: list[Probe]) -> None:
    probe = new_probe(probes, own_session=False)  # shares pytest's (the panel's) process group
    assert os.getpgid(probe.pid) == os.getpgrp()
    for name in ("TERM", "KILL"):
        with pytest.raises(Invalid, match=f"refusing to signal pid {probe.pid}: it is in this panel's own"):
            services.processes.signal(OPERATOR, probe.pid, name)
    assert probe.received_nothing()
    events = signal_events(services)
    assert [(e.outcome, detail(e)["rule"]) for e in events] == [("denied", "panel-group")] * 2


def test_a_thread_of_the_panel_itself_is_refused(services: Services) -> None:
    """A thread of this test process (the panel here). A SIGTERM that got through would be caught by
    the handler rather than end the test run; the next test proves strictly that none is sent."""
    received: list[int] = []
    previous = signals.signal(signals.SIGTERM, lambda number, _frame: received.append(number))
    stop = threading.Event()
    ready = threading.Event()
    native: list[int] = []

    def worker() -> None:
        native.append(threading.get_native_id())
        ready.set()
        stop.wait(30)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        (tid,) = native
        assert tid != os.getpid()
        with pytest.raises(Invalid, match=f"refusing to signal {tid}: it is a thread of this panel's own"):
            services.processes.signal(OPERATOR, tid, "TERM")
        (event,) = signal_events(services)
        assert (event.outcome, detail(event)["rule"]) == ("denied", "panel-thread")
    finally:
        stop.set()
        thread.join(10)
        signals.signal(signals.SIGTERM, previous)
    assert received == []


# The panel in a process of its own (its own process group, under a parent that reports any signal), so
# a broken rule could only ever signal these test processes. Its second thread blocks SIGTERM, so a
# signal sent to that thread id is delivered to the main thread before `kill` returns: `received`
# then holds it for certain when the results are printed.
PANEL = r"""
import json, os, signal, subprocess, sys, threading
from nox_ui.errors import NoxError
from nox_ui.roles import Principal, Role
from nox_ui.services.processes import ProcessService

received = []
signal.signal(signal.SIGTERM, lambda *_: received.append("TERM"))
started = threading.Event()
thread_id = []

def worker():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    thread_id.append(threading.get_native_id())
    started.set()
    threading.Event().wait()

threading.Thread(target=worker, daemon=True).start()
started.wait()
member = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in our group
service = ProcessService()
operator = Principal(user_id=2, username="olga", role=Role.OPERATOR)
results = {}
for label, target in (
    ("own thread", thread_id[0]),
    ("own process", os.getpid()),
    ("parent", os.getppid()),
    ("group member", member.pid),
):
    try:
        service.signal(operator, target, "TERM")
        results[label] = "signalled"
    except NoxError as exc:
        results[label] = exc.message
member.kill()
results["group member exit"] = member.wait()
print(json.dumps({"results": results, "received": received, "thread": thread_id[0],
                  "pid": os.getpid(), "parent": os.getppid(), "member": member.pid}), flush=True)
"""

# The panel's parent: reports a SIGTERM it receives; it waits for the panel, so its report comes first.
PARENT = r"""
import signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: print("PARENT GOT TERM", flush=True))
panel = subprocess.run([sys.executable, "-c", sys.argv[1]], process_group=0)
print("panel exit", panel.returncode, flush=True)
"""


def test_the_panel_never_signals_its_own_threads_parent_or_process_group() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT, PANEL],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        start_new_session=True,
    )
    assert parent.returncode == 0, parent.stderr
    *report_lines, last = parent.stdout.strip().splitlines()
    assert last == "panel exit 0", parent.stdout + parent.stderr
    assert "PARENT GOT TERM" not in parent.stdout
    (report_line,) = report_lines
    report = json.loads(report_line)
    results = report["results"]
    assert results == {
        "own thread": f"refusing to signal {report['thread']}: it is a thread of this panel's own process",
        "own process": f"refusing to signal pid {report['pid']}: it is this panel's own process",
        "parent": f"refusing to signal pid {report['parent']}: it is this panel's parent process",
        "group member": f"refusing to signal pid {report['member']}: it is in this panel's own process "
        f"group ({report['pid']}), so stopping it may stop the panel",
        "group member exit": -9,  # our KILL at the end, not a TERM from the service
    }
    assert report["received"] == []


def test_api_refusals_are_422_and_audited_with_the_address(
    api: TestClient, accounts: Services, probes: list[Probe]
) -> None:
    probe = new_probe(probes)
    operator = bearer(api, "olga", OPERATOR_PASSWORD)
    thread = api.post(f"/api/v1/processes/{probe.tid}/signal", json={"signal": "KILL"}, headers=operator)
    assert thread.status_code == 422
    assert f"it is a thread of process {probe.pid}, not a process" in thread.json()["detail"]
    own_group = new_probe(probes, own_session=False)
    group = api.post(f"/api/v1/processes/{own_group.pid}/signal", json={"signal": "KILL"}, headers=operator)
    assert group.status_code == 422
    assert "in this panel's own process group" in group.json()["detail"]
    assert probe.received_nothing() and own_group.received_nothing()

    done = api.post(f"/api/v1/processes/{probe.pid}/signal", json={"signal": "TERM"}, headers=operator)
    assert done.status_code == 200
    assert probe.line() == "TERM"

    events = signal_events(accounts)
    assert [(e.actor_name, e.outcome, e.target_id, e.source_ip) for e in events] == [
        ("olga", "denied", str(probe.tid), "203.0.113.9"),
        ("olga", "denied", str(own_group.pid), "203.0.113.9"),
        ("olga", "success", str(probe.pid), "203.0.113.9"),
    ]


# -- hole 11: command lines are for operators and admins ---------------------------------------------


@pytest.fixture
def secret_holder(probes: list[Probe]) -> tuple[Probe, str]:
    secret = f"hunter2-{uuid.uuid4().hex}"
    return new_probe(probes, argument=f"--password={secret}"), secret


def test_viewers_see_the_executable_name_and_cannot_search_the_arguments(
    secret_holder: tuple[Probe, str],
) -> None:
    probe, secret = secret_holder
    service = ProcessService()
    (seen,) = service.list(VIEWER, q=str(probe.pid)).items
    assert seen.cmdline == seen.name and seen.name.startswith("python")
    assert seen.cmdline_hidden is True
    assert secret not in repr(seen)
    for needle in (secret, "hunter2", "--password", "import os"):
        assert probe.pid not in [p.pid for p in service.list(VIEWER, q=needle, limit=1000).items], needle
    assert secret not in service.details(VIEWER, probe.pid).info.cmdline

    for requester in (OPERATOR, ADMIN):
        (full,) = service.list(requester, q=secret).items
        assert full.pid == probe.pid and full.cmdline.endswith(f"--password={secret}")
        assert full.cmdline_hidden is False
        assert service.details(requester, probe.pid).info.cmdline.endswith(secret)

    relaxed = ProcessService(settings=lambda: RuntimeSettings(process_cmdline_for_viewers=True))
    (shown,) = relaxed.list(VIEWER, q=secret).items
    assert shown.cmdline.endswith(secret) and not shown.cmdline_hidden


def test_api_hides_command_lines_from_viewers_unless_an_admin_allows_them(
    api: TestClient, accounts: Services, secret_holder: tuple[Probe, str]
) -> None:
    probe, secret = secret_holder
    viewer = bearer(api, "victor", VIEWER_PASSWORD)
    operator = bearer(api, "olga", OPERATOR_PASSWORD)

    listed = api.get("/api/v1/processes", params={"q": str(probe.pid), "limit": 1000}, headers=viewer)
    assert listed.status_code == 200
    assert secret not in listed.text and "--password" not in listed.text
    (item,) = [p for p in listed.json()["items"] if p["pid"] == probe.pid]
    assert (item["cmdline"], item["cmdline_hidden"]) == (item["name"], True)
    everything = api.get("/api/v1/processes", params={"limit": 1000, "sort": "pid"}, headers=viewer)
    assert secret not in everything.text
    oracle = api.get("/api/v1/processes", params={"q": secret}, headers=viewer).json()
    assert oracle == {"total": 0, "items": []}

    found = api.get("/api/v1/processes", params={"q": secret}, headers=operator).json()
    assert found["total"] == 1
    assert found["items"][0]["cmdline"].endswith(f"--password={secret}")
    assert found["items"][0]["cmdline_hidden"] is False

    accounts.settings.update(ADMIN, {"process_cmdline_for_viewers": True})
    allowed = api.get("/api/v1/processes", params={"q": secret}, headers=viewer).json()
    assert allowed["total"] == 1 and allowed["items"][0]["cmdline"].endswith(secret)
