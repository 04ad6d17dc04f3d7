"""The process view through NiceGUI's simulated user, with a real child process to find and stop.

The child starts in a session of its own: the panel refuses to signal its own process group."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

import nox_ui.pages.processes
from nox_ui.app import Services
from nox_ui.roles import Principal, Role
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, sign_in


@pytest.fixture
def child() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A sleeper whose command line ends with a fake password, the marker to search for."""
    marker = f"nox-ui-test-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", f"--password={marker}"],
        start_new_session=True,
    )
    try:
        yield process, marker
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def table_of(user: User) -> ui.table:
    tables = user.find(marker="process-table").elements
    assert len(tables) == 1
    table = tables.pop()
    assert isinstance(table, ui.table)
    return table


async def find_child(user: User, pid: int, query: str) -> ui.table:
    user.find(marker="process-search").type(query)
    table = table_of(user)
    await until(lambda: [row["pid"] for row in table.rows] == [pid])
    return table


async def open_details(user: User, table: ui.table, pid: int) -> None:
    table_of(user)  # still there
    user.find(marker="process-table").trigger("rowClick", [{}, {"pid": pid}, 0])
    await user.should_see("Parent PID", retries=30)


def shown_text(user: User) -> str:
    """Every text and row value of the page as the browser gets it."""
    assert user.client is not None
    parts: list[str] = []
    for element in user.client.elements.values():
        parts.append(str(element._props))
        parts.append(str(getattr(element, "text", "")))
        if isinstance(element, ui.table):
            parts.append(json.dumps(element.rows))
    return "\n".join(parts)


async def test_viewer_sees_the_executable_not_the_arguments_and_no_terminate_button(
    app_user: User, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, marker = child
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/processes")
    # The page's own heading, not the nav drawer's or the header's "Processes"
    headings = [e.text for e in app_user.find(kind=ui.label).elements if "text-h5" in e.classes]
    assert headings == ["Processes"], headings
    await app_user.should_see("operators and admins also see command lines")
    table = await find_child(app_user, process.pid, str(process.pid))
    (row,) = table.rows
    assert row["cmdline"] == row["name"] and row["name"].startswith("python")
    assert row["cmdline_hidden"] is True
    assert row["rss"].endswith(("KiB", "MiB"))
    await open_details(app_user, table, process.pid)
    await app_user.should_see(f"pid {process.pid}")
    await app_user.should_see("arguments are shown to operators and admins")
    await app_user.should_not_see(marker="terminate")
    await app_user.should_not_see(marker="kill")
    assert marker not in shown_text(app_user)
    assert process.poll() is None


async def test_a_viewers_search_does_not_match_hidden_arguments(
    app_user: User, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    _, marker = child
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/processes")
    table = table_of(app_user)
    await until(lambda: table.rows)
    app_user.find(marker="process-search").type(marker)
    await until(lambda: table.pagination.get("rowsNumber") == 0 and not table.rows)
    await app_user.should_see(f"0 matching “{marker}”")


async def test_operator_sees_the_command_line(
    app_user: User, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, marker = child
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/processes")
    table = await find_child(app_user, process.pid, marker)
    assert table.rows[0]["cmdline"].endswith(f"--password={marker}")
    assert table.rows[0]["cmdline_hidden"] is False
    await open_details(app_user, table, process.pid)
    await app_user.should_see(f"--password={marker}")


async def test_a_viewer_sees_the_command_line_once_an_admin_allows_it(
    app_user: User, accounts: Services, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, marker = child
    admin = accounts.users.get_by_username("admin")
    accounts.settings.update(
        Principal(user_id=admin.id or 0, username="admin", role=Role.ADMIN),
        {"process_cmdline_for_viewers": True},
    )
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/processes")
    table = await find_child(app_user, process.pid, marker)
    assert table.rows[0]["cmdline"].endswith(f"--password={marker}")
    await open_details(app_user, table, process.pid)
    await app_user.should_see(f"--password={marker}")


async def test_sorting_and_paging_are_requested_from_the_service(app_user: User) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/processes")
    table = table_of(app_user)
    await until(lambda: table.rows)
    request = {"sortBy": "pid", "descending": False, "page": 2, "rowsPerPage": 25}
    app_user.find(marker="process-table").trigger("request", {"pagination": request})

    def pids() -> list[int]:
        return [row["pid"] for row in table.rows]

    # The pagination changes at once; the rows only when the service has answered.
    await until(lambda: table.rows and len(pids()) <= 25 and pids() == sorted(pids()))
    assert table.pagination.get("sortBy") == "pid" and table.pagination.get("page") in (1, 2)
    assert table.pagination["rowsNumber"] >= len(pids())


async def test_operator_terminates_the_child_through_the_confirm_dialog(
    app_user: User, accounts: Services, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, marker = child
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/processes")
    table = await find_child(app_user, process.pid, marker)
    await open_details(app_user, table, process.pid)
    app_user.find(marker="terminate").click()
    await app_user.should_see(f"Terminate process {process.pid} (python", retries=30)
    assert process.poll() is None  # nothing happens before the confirmation
    app_user.find(marker="confirm-signal").click()
    await app_user.should_see(f"Sent TERM to process {process.pid}", retries=50)
    assert await asyncio.to_thread(process.wait, 5) == -15
    (event,) = accounts.audit.query(action="process.signal").events
    assert (event.actor_name, event.outcome, event.target_id) == ("olga", "success", str(process.pid))
    assert event.source_ip == "127.0.0.1"  # the simulated browser's address, as the page saw it


async def test_signalling_a_process_that_has_exited_says_so(
    app_user: User, child: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, marker = child
    await sign_in(app_user, "olga", OPERATOR_PASSWORD, next_path="/processes")
    table = await find_child(app_user, process.pid, marker)
    await open_details(app_user, table, process.pid)
    process.kill()
    await asyncio.to_thread(process.wait, 5)
    app_user.find(marker="kill").click()
    await app_user.should_see(marker="confirm-signal", retries=30)
    app_user.find(marker="confirm-signal").click()
    await app_user.should_see(f"Process {process.pid} no longer exists", retries=50)


async def test_the_refresh_timer_stops_with_the_client(
    app_user: User, accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nox_ui.pages.processes, "REFRESH_SECONDS", 0.1)
    calls: list[float] = []
    running: list[int] = []  # listings under way in a worker thread
    listing = accounts.processes.list

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(0)
        running.append(0)
        try:
            return listing(*args, **kwargs)
        finally:
            running.pop()

    monkeypatch.setattr(accounts.processes, "list", counted)
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/processes")
    await until(lambda: len(calls) >= 3)  # the page listed once, then the timer ticked
    assert app_user.client is not None
    timers = [e for e in app_user.client.elements.values() if isinstance(e, ui.timer)]
    assert timers
    app_user.client.delete()  # what NiceGUI does once a closed tab's reconnect window passed
    # No sleeping and hoping: every timer's loop has ended (NiceGUI drops its callback on the way out)
    # and no listing is still running, so nothing can list again.
    await until(lambda: all(timer.callback is None for timer in timers) and not running)
    settled = len(calls)
    await asyncio.sleep(0)
    assert len(calls) == settled
