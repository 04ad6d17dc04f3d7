"""One supervisor for all background work: nothing the panel runs behind the pages dies silently.

Three kinds of job, each under a name that keeps its place in `states()`:

- `task(name, run)`: a coroutine on the event loop (the sampler, housekeeping, the plugin watch);
- `thread(name, run)`: `run(stop)` in a daemon thread, returning once `stop` is set (the delivery queue,
  the search writer); `wake` is called after `stop` is set, for a job that waits on something else;
- `report(name, error)`: a job that loops by itself (a sampler tick, a history write, an alert write)
  says how each round went; `watch(name)` lists such a job before its first report.

A task or thread that raises (any BaseException but the three below), or returns without being asked
to stop (a task is asked by cancelling it, a thread by its `stop`), is logged with its traceback and
run again after a backoff (1 s doubling to 60 s; back to 1 s once a run lasted `healthy_after` seconds).
KeyboardInterrupt and SystemExit mean "exit", not a bug to retry: they are logged, the job is left
failing (not restarted) and, in a task, re-raised so the event loop ends; CancelledError is a task's
stop. A job is "failing" from its failure until it reports success or has run `healthy_after` seconds
since its restart; "stopped" once stopped. `changed` announces every change of status (on the event loop when one runs), which the
frame's health banner shows live. Only the standard library and loguru are imported: this is loaded by
every server and must cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from loguru import logger

from nox_ui.errors import database_busy, disk_full
from nox_ui.signals import Signal

RUNNING, FAILING, STOPPED = "running", "failing", "stopped"
STORAGE_JOB = "storage"  # the database's writes as a whole (`Database.storage_health`): a full disk
REPEAT_LOG_SECONDS = 300.0  # a job failing on every round logs a traceback at most this often
STOP_TIMEOUT = 10.0  # seconds `stop` waits for a thread job to return
EXIT_ERRORS = (KeyboardInterrupt, SystemExit)  # a job that raises one ends for good


class JobReturned(RuntimeError):
    """A supervised run returned while nobody asked it to stop: its loop ended by mistake."""

    def __init__(self) -> None:
        super().__init__("it returned without being asked to stop")


@dataclass(frozen=True)
class JobState:
    name: str
    status: str  # RUNNING | FAILING | STOPPED
    failing_since: float | None  # Unix time of the first failure of the current streak
    last_error: str | None  # "Type: message" of the latest failure (admins only: it may name paths)
    restarts: int  # times the supervisor started the job again after it raised
    last_ok: float | None  # Unix time of the latest reported success
    failures: int  # failures since the panel started
    problem: str | None  # what anyone may read: "the disk is full", "the database is busy", ...


def problem_of(error: BaseException) -> str:
    """A description of a failure that names no path, query or secret."""
    if disk_full(error):
        return "the disk is full"
    if database_busy(error):
        return "the database is busy"
    return "an unexpected error"


def error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()[0] if str(error) else type(error).__name__
    return text[:300]


class _Job:
    """A job's mutable record; read and written under the supervisor's lock."""

    def __init__(self, name: str) -> None:
        self.state = JobState(name, RUNNING, None, None, 0, None, 0, None)
        self.crashed = False  # failing because its run raised (not a report): recovers by running on
        self.streak = 0  # failures in a row
        self.run_started = 0.0  # monotonic time its current run began
        self.last_logged = 0.0  # monotonic time of its last logged traceback
        self.task: asyncio.Task[None] | None = None
        self.thread: threading.Thread | None = None
        self.stop: threading.Event | None = None
        self.wake: Callable[[], object] | None = None


class Supervisor:
    def __init__(
        self,
        *,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        healthy_after: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if backoff <= 0 or backoff_max < backoff or healthy_after <= 0:
            raise ValueError("invalid supervisor policy")
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.clock = clock
        self.changed: Signal[JobState] = Signal("supervisor.changed")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- starting ----------------------------------------------------------------------------------

    def task(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` on the running event loop, again after a backoff whenever it raises (idempotent
        while it runs)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        job = self._started(name, running=lambda j: j.task is not None and not j.task.done())
        if job is None:
            return
        job.task = loop.create_task(self._keep_task(job, run), name=f"job {name}")

    def thread(
        self, name: str, run: Callable[[threading.Event], None], *, wake: Callable[[], object] | None = None
    ) -> None:
        """Run `run(stop)` in a daemon thread, again after a backoff whenever it raises (idempotent while
        it runs). `run` returns once `stop` is set; `wake` (if given) is called right after setting it."""
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        job = self._started(name, running=lambda j: j.thread is not None and j.thread.is_alive())
        if job is None:
            return
        stop = threading.Event()
        job.stop, job.wake = stop, wake
        job.thread = threading.Thread(
            target=self._keep_thread, args=(job, run, stop), name=f"nox-{name}", daemon=True
        )
        job.thread.start()

    def watch(self, name: str) -> None:
        """List a self-looping job (one that `report`s) as running before its first report."""
        with self._lock:
            job = self._entry(name)
            if job.state.status == STOPPED:
                job.state = replace(job.state, status=RUNNING, failing_since=None)
                job.crashed, job.streak = False, 0

    def _started(self, name: str, running: Callable[[_Job], bool]) -> _Job | None:
        with self._lock:
            job = self._entry(name)
            if running(job):
                return None
            job.state = replace(job.state, status=RUNNING, failing_since=None)
            job.crashed, job.streak = False, 0
            job.run_started = time.monotonic()
            return job

    def _entry(self, name: str) -> _Job:
        job = self._jobs.get(name)
        if job is None:
            job = self._jobs[name] = _Job(name)
        return job

    # -- keeping them running ----------------------------------------------------------------------

    async def _keep_task(self, job: _Job, run: Callable[[], Awaitable[None]]) -> None:
        delay = self.backoff
        exited = False
        try:
            while True:
                started = time.monotonic()
                failure: BaseException
                try:
                    await run()
                    failure = JobReturned()  # only cancelling (`stop`) ends a task job
                except asyncio.CancelledError:
                    raise
                except EXIT_ERRORS as exc:
                    exited = True
                    self._exited(job, exc)
                    raise
                except BaseException as exc:  # a foreign BaseException is a bug of the job too
                    failure = exc
                delay = self.backoff if time.monotonic() - started >= self.healthy_after else delay
                self._crashed(job, failure, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                self._restarting(job)
        finally:
            if not exited:
                self._ended(job)

    def _keep_thread(self, job: _Job, run: Callable[[threading.Event], None], stop: threading.Event) -> None:
        delay = self.backoff
        exited = False
        try:
            while not stop.is_set():
                started = time.monotonic()
                failure: BaseException
                try:
                    run(stop)
                    if stop.is_set():
                        return
                    failure = JobReturned()
                except EXIT_ERRORS as exc:
                    # Not re-raised: a thread cannot end the process this way, so the job just ends.
                    exited = True
                    self._exited(job, exc)
                    return
                except BaseException as exc:
                    failure = exc
                delay = self.backoff if time.monotonic() - started >= self.healthy_after else delay
                self._crashed(job, failure, delay)
                if stop.wait(delay):
                    break
                delay = min(delay * 2, self.backoff_max)
                self._restarting(job)
        finally:
            if not exited:
                self._ended(job)

    def _crashed(self, job: _Job, error: BaseException, delay: float) -> None:
        self._record(job, error, crashed=True)
        returned = isinstance(error, JobReturned)
        logger.opt(exception=None if returned else error).error(
            "background job {} {} ({} in a row); it starts again in {:.0f} s",
            job.state.name,
            "returned without being asked to stop" if returned else "failed",
            job.streak,
            delay,
        )
        job.last_logged = time.monotonic()

    def _exited(self, job: _Job, error: BaseException) -> None:
        """The job raised KeyboardInterrupt or SystemExit: failing until started or stopped again."""
        self._record(job, error, crashed=False)
        logger.opt(exception=error).error(
            "background job {} ended by {}; it is not started again", job.state.name, type(error).__name__
        )
        job.last_logged = time.monotonic()

    def _restarting(self, job: _Job) -> None:
        with self._lock:
            job.state = replace(job.state, restarts=job.state.restarts + 1)
            job.run_started = time.monotonic()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # Checked once the restarted run has lasted `healthy_after`, so the banner clears by itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.call_later, self.healthy_after, self._settle, job)

    def _ended(self, job: _Job) -> None:
        with self._lock:
            changed = job.state.status != STOPPED
            job.state = replace(job.state, status=STOPPED, failing_since=None)
            job.crashed, job.streak = False, 0
            state = job.state
        if changed:
            self._announce(state)

    # -- reporting ---------------------------------------------------------------------------------

    def report(self, name: str, error: BaseException | None) -> None:
        """How one round of the self-looping job `name` went: None for success. Cheap on success (the
        sampler reports every tick); a failure is logged (its traceback at most every few minutes while
        it repeats) and makes the job failing until a success."""
        if error is not None:
            with self._lock:
                job = self._entry(name)
                first = job.state.status != FAILING
                now = time.monotonic()
                log = first or now - job.last_logged >= REPEAT_LOG_SECONDS
                if log:
                    job.last_logged = now
            if log:
                logger.opt(exception=error).error(
                    "background job {} failed{}", name, "" if first else " again (still failing)"
                )
            self._record(job, error, crashed=False)
            return
        with self._lock:
            job = self._entry(name)
            was, streak = job.state, job.streak
            job.state = replace(was, status=RUNNING, failing_since=None, last_ok=self.clock())
            job.crashed, job.streak = False, 0
            state = job.state
        if was.status == FAILING:
            logger.info("background job {} recovered after {} failures in a row", name, streak)
        if was.status != RUNNING:
            self._announce(state)

    def _record(self, job: _Job, error: BaseException, *, crashed: bool) -> None:
        with self._lock:
            was = job.state
            job.streak = job.streak + 1 if was.status == FAILING else 1
            job.state = replace(
                was,
                status=FAILING,
                failing_since=was.failing_since if was.status == FAILING else self.clock(),
                last_error=error_text(error),
                problem=problem_of(error),
                failures=was.failures + 1,
            )
            job.crashed = crashed
            state = job.state
        if was.status != FAILING or was.problem != state.problem:
            self._announce(state)

    def _settle(self, job: _Job) -> None:
        """A restarted job that has run `healthy_after` seconds without failing again is running."""
        with self._lock:
            healthy = (
                job.crashed
                and job.state.status == FAILING
                and time.monotonic() - job.run_started >= self.healthy_after * 0.99
            )
            if healthy:
                job.state = replace(job.state, status=RUNNING, failing_since=None)
                job.crashed, job.streak = False, 0
            state = job.state
        if healthy:
            logger.info("background job {} runs again", state.name)
            self._announce(state)

    def _announce(self, state: JobState) -> None:
        self.changed.emit_on(self._loop, state)

    # -- reading -----------------------------------------------------------------------------------

    def states(self) -> list[JobState]:
        """Every job, in the order they first appeared."""
        for job in list(self._jobs.values()):
            if job.crashed:
                self._settle(job)
        return [job.state for job in list(self._jobs.values())]

    def state(self, name: str) -> JobState | None:
        job = self._jobs.get(name)
        return job.state if job is not None else None

    def failing(self) -> list[JobState]:
        return [state for state in self.states() if state.status == FAILING]

    # -- stopping ----------------------------------------------------------------------------------

    async def stop(self, *names: str) -> None:
        """Stop the named jobs (all of them when none is named): tasks are cancelled and awaited, thread
        jobs are asked to stop and joined (up to `STOP_TIMEOUT` s each), reported jobs marked stopped."""
        with self._lock:
            chosen = [job for name, job in self._jobs.items() if not names or name in names]
        tasks = [job.task for job in chosen if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()
        threads = []
        for job in chosen:
            if job.thread is not None and job.stop is not None:
                job.stop.set()
                if job.wake is not None:
                    job.wake()
                threads.append(job.thread)
        await asyncio.gather(*tasks, return_exceptions=True)
        for thread in threads:
            await asyncio.to_thread(thread.join, STOP_TIMEOUT)
            if thread.is_alive():
                logger.warning("background job thread {} did not stop in {:.0f} s", thread.name, STOP_TIMEOUT)
        for job in chosen:
            job.task = None
            self._ended(job)
