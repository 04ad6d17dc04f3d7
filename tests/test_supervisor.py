"""The supervisor: a task or thread job that raises is logged and started again with backoff, a job that
reports says how each round went, `changed` announces every change of status, and `stop` ends them all.
Small backoffs keep these quick; nothing waits for time to pass without a condition to wait for."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import threading
from collections.abc import Callable, Iterator

import pytest
from loguru import logger

from nox_ui.errors import StorageFull, database_busy, disk_full
from nox_ui.supervisor import FAILING, RUNNING, STOPPED, JobState, Supervisor, problem_of


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)), level="INFO", format="{message}\n{exception}"
    )
    yield lines
    logger.remove(sink)


async def until(predicate: Callable[[], bool], tries: int = 2000) -> None:
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def fast(healthy_after: float = 30.0) -> Supervisor:
    return Supervisor(backoff=0.01, backoff_max=0.04, healthy_after=healthy_after)


def of(supervisor: Supervisor, name: str) -> JobState:
    state = supervisor.state(name)
    assert state is not None, f"no job {name!r}"
    return state


async def test_a_task_that_raises_is_logged_and_started_again_with_backoff(logged: list[str]) -> None:
    supervisor = fast()
    runs: list[int] = []
    release = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise RuntimeError(f"tick {len(runs)} broke")
        await release.wait()

    supervisor.task("sampler", job)
    await until(lambda: len(runs) == 4)
    state = supervisor.state("sampler")
    assert state is not None
    assert state.status == FAILING  # it raised three times and has not proven itself yet
    assert state.restarts == 3 and state.failures == 3
    assert state.last_error == "RuntimeError: tick 3 broke"
    assert state.problem == "an unexpected error"
    text = "\n".join(logged)
    assert "background job sampler failed (1 in a row); it starts again in 0 s" in text
    assert "background job sampler failed (3 in a row)" in text
    assert "Traceback" in text and "tick 1 broke" in text

    supervisor.report("sampler", None)  # its first good round
    assert of(supervisor, "sampler").status == RUNNING
    assert of(supervisor, "sampler").failing_since is None
    await supervisor.stop()
    assert of(supervisor, "sampler").status == STOPPED


async def test_a_restarted_job_counts_as_running_once_it_has_lasted(logged: list[str]) -> None:
    supervisor = fast(healthy_after=0.05)
    runs: list[int] = []
    seen: list[str] = []
    supervisor.changed.connect(lambda state: seen.append(state.status))

    async def job() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        await asyncio.Event().wait()

    supervisor.task("search", job)
    await until(lambda: of(supervisor, "search").status == RUNNING and len(runs) == 2)
    assert seen == [FAILING, RUNNING]  # the loop's timer settled it: no report was needed
    assert of(supervisor, "search").problem == "the disk is full"
    assert any("background job search runs again" in line for line in logged)
    await supervisor.stop()


async def test_a_thread_job_is_restarted_and_stopped_through_its_event() -> None:
    supervisor = fast()
    runs: list[int] = []
    woken = threading.Event()

    def job(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("index writer crashed")
        stop.wait()

    supervisor.thread("search", job, wake=woken.set)
    await until(lambda: len(runs) == 2)
    state = supervisor.state("search")
    assert (
        state is not None and state.restarts == 1 and state.last_error == "ValueError: index writer crashed"
    )
    supervisor.thread("search", job)  # idempotent while it runs
    await supervisor.stop("search")
    assert woken.is_set()
    assert of(supervisor, "search").status == STOPPED
    assert len(runs) == 2


async def test_reports_turn_a_job_failing_and_back_and_keep_their_place(logged: list[str]) -> None:
    supervisor = fast()
    changes: list[JobState] = []
    supervisor.changed.connect(changes.append)
    supervisor.watch("sampler")
    supervisor.watch("history")
    supervisor.report("history", None)
    assert [s.status for s in supervisor.states()] == [RUNNING, RUNNING]
    assert changes == []  # nothing changed status

    full = sqlite3.OperationalError("database or disk is full")
    for _ in range(5):
        supervisor.report("history", full)
    history = supervisor.state("history")
    assert history is not None and history.status == FAILING and history.failures == 5
    assert history.problem == "the disk is full"
    assert len(changes) == 1 and changes[0].status == FAILING
    assert sum("background job history failed" in line for line in logged) == 1  # the repeats are quiet

    supervisor.report("history", None)
    assert of(supervisor, "history").status == RUNNING
    assert [s.name for s in supervisor.states()] == ["sampler", "history"]
    assert [c.status for c in changes] == [FAILING, RUNNING]
    assert any("background job history recovered after 5 failures in a row" in line for line in logged)


async def test_a_task_that_returns_by_itself_is_logged_and_restarted(logged: list[str]) -> None:
    supervisor = fast()
    runs: list[int] = []

    async def loop_that_ends() -> None:
        runs.append(1)
        if len(runs) > 2:
            await asyncio.Event().wait()

    supervisor.task("plugins", loop_that_ends)
    await until(lambda: len(runs) == 3)
    state = of(supervisor, "plugins")
    assert state.status == FAILING and state.restarts == 2
    assert state.last_error == "JobReturned: it returned without being asked to stop"
    assert any("background job plugins returned without being asked to stop" in line for line in logged)
    await supervisor.stop()
    assert of(supervisor, "plugins").status == STOPPED


async def test_a_thread_that_returns_unasked_or_raises_a_base_exception_is_restarted(
    logged: list[str],
) -> None:
    supervisor = fast()
    runs: list[int] = []

    class Foreign(BaseException):
        """Not an Exception: the kind `except Exception` used to miss."""

    def job(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            return  # its loop ended by mistake
        if len(runs) == 2:
            raise Foreign("writer aborted")
        stop.wait()

    supervisor.thread("search", job)
    await until(lambda: len(runs) == 3)
    state = of(supervisor, "search")
    assert state.status == FAILING and state.restarts == 2 and state.failures == 2
    assert state.last_error == "Foreign: writer aborted"
    text = "\n".join(logged)
    assert "background job search returned without being asked to stop (1 in a row)" in text
    assert "background job search failed (2 in a row)" in text and "writer aborted" in text
    await supervisor.stop("search")
    assert of(supervisor, "search").status == STOPPED and len(runs) == 3


async def test_a_thread_that_raises_system_exit_is_logged_and_left_failing(logged: list[str]) -> None:
    supervisor = fast()
    runs: list[int] = []

    def job(stop: threading.Event) -> None:
        runs.append(1)
        raise SystemExit(3)

    supervisor.thread("delivery", job)
    await until(
        lambda: of(supervisor, "delivery").status == FAILING and any("ended by" in line for line in logged)
    )
    assert any(
        "background job delivery ended by SystemExit; it is not started again" in line for line in logged
    )
    assert runs == [1] and of(supervisor, "delivery").restarts == 0
    await supervisor.stop()
    assert of(supervisor, "delivery").status == STOPPED


def test_failures_are_described_without_their_text() -> None:
    assert problem_of(StorageFull()) == "the disk is full"
    assert problem_of(OSError(errno.ENOSPC, "No space left on device: '/srv/secret'")) == "the disk is full"
    assert problem_of(sqlite3.OperationalError("database is locked")) == "the database is busy"
    assert problem_of(KeyError("/etc/shadow")) == "an unexpected error"
    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = sqlite3.OperationalError("database or disk is full")
    assert disk_full(wrapped) and not database_busy(wrapped)
    with pytest.raises(ValueError):
        Supervisor(backoff=0)
