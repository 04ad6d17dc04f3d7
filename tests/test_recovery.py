"""Errors that heal themselves: every background job keeps running through its failures (and restarts
after a crash of its own loop), shows it to the supervisor, and recovers by itself; a full disk loses no
history; a busy database is waited out.

Faults are injected where they happen for real: SQLite's own "database or disk is full" raised at the
statement (through SQLAlchemy, as a full disk would), a real write lock held by another connection, or
a crash of a job's loop. Tests wait for states, never for time."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import pytest
from nicegui.testing import User
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from nox_ui.app import Services
from nox_ui.db import retry_busy
from nox_ui.errors import StorageFull
from nox_ui.metrics.sampler import Sample
from nox_ui.plugins import host as plugin_host
from nox_ui.roles import PANEL
from nox_ui.services.retention import Housekeeping
from nox_ui.supervisor import FAILING, RUNNING, STORAGE_JOB, JobState
from tests.receivers import HttpReceiver
from tests.test_notify import allow_loopback, deliveries, make_alert, message_for, webhook

MINUTE = 60


class FullDisk:
    """While active, every statement starting with one of `prefixes` fails as SQLite does on a full disk."""

    def __init__(self, engine: Engine, *prefixes: str) -> None:
        self.engine = engine
        self.prefixes = tuple(prefix.upper() for prefix in prefixes)
        self.hits = 0

    def _fail(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(self.prefixes):
            self.hits += 1
            raise sqlite3.OperationalError("database or disk is full")

    def __enter__(self) -> FullDisk:
        event.listen(self.engine, "before_cursor_execute", self._fail)
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        event.remove(self.engine, "before_cursor_execute", self._fail)


async def until(predicate: Callable[[], Any], tries: int = 3000) -> None:
    """Poll `predicate` (every 10 ms; the deadline only catches a hang)."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def job(services: Services, name: str) -> JobState:
    """The job's state; "absent" until it first runs or reports (so a condition can wait for it)."""
    return services.supervisor.state(name) or JobState(name, "absent", None, None, 0, None, 0, None)


@pytest.fixture
async def running(accounts: Services) -> AsyncIterator[Services]:
    """The services with all background work started, as `nox-ui serve` runs them (fast restarts)."""
    accounts.supervisor.backoff = 0.05
    accounts.start()
    yield accounts
    await accounts.stop()


# -- history and a full disk ------------------------------------------------------------------------


def stored_minutes(services: Services) -> list[tuple[int, float, int]]:
    """(minute, avg, copies) of cpu.percent in the minute tier."""
    with services.db.session() as session:
        rows = session.execute(
            text(
                "SELECT m.ts, MIN(m.avg), COUNT(*) FROM metric_minute m JOIN metric_series s "
                "ON s.id = m.series_id WHERE s.key = 'cpu.percent' GROUP BY m.ts ORDER BY m.ts"
            )
        ).all()
    return [(int(ts), float(avg), int(count)) for ts, avg, count in rows]


async def test_history_that_a_full_disk_held_back_is_written_once_space_is_back(services: Services) -> None:
    metrics = services.metrics
    base = (int(time.time()) // MINUTE - 10) * MINUTE

    def publish(minute: int) -> None:
        metrics.publish(
            Sample(ts=base + minute * MINUTE + 5, values={"cpu.percent": float(minute)}, duration=0.0)
        )

    publish(0)
    with FullDisk(services.db.engine, "INSERT INTO metric_minute") as full:
        publish(1)  # minute 0 is complete: its write fails
        await until(lambda: job(services, "history").failures == 1)
        publish(2)  # minutes 0 and 1, tried together
        await until(lambda: job(services, "history").failures == 2)
        assert full.hits == 2
    history = job(services, "history")
    assert history.status == FAILING and history.problem == "the disk is full"
    assert job(services, STORAGE_JOB).status == FAILING  # the database said so too: the banner's line
    assert stored_minutes(services) == []

    publish(3)  # the disk has room again: the held minutes go first, with the new one
    await until(lambda: job(services, "history").status == RUNNING)
    assert stored_minutes(services) == [(base, 0.0, 1), (base + 60, 1.0, 1), (base + 120, 2.0, 1)]
    assert job(services, STORAGE_JOB).status == RUNNING  # the first write that committed cleared it
    publish(4)
    await until(lambda: len(stored_minutes(services)) == 4)
    assert [copies for _ts, _avg, copies in stored_minutes(services)] == [1, 1, 1, 1]


def test_a_write_lock_held_elsewhere_is_waited_out(services: Services) -> None:
    engine = services.db.engine

    @event.listens_for(engine, "connect")
    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=100")  # SQLite gives up after 0.1 s, not 15

    engine.dispose()
    database = engine.url.database
    assert database is not None
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: the write lock is taken
    waits: list[float] = []

    def release_after_first_refusal(delay: float) -> None:
        waits.append(delay)
        holder.execute("COMMIT")

    minute = (int(time.time()) // MINUTE - 5) * MINUTE
    history = services.metrics.history
    retry_busy(
        lambda: history.write([(minute, {"cpu.percent": (7.0, 6.0, 8.0)})]), sleep=release_after_first_refusal
    )
    holder.close()
    assert waits == [0.2]  # refused once ("database is locked"), then through
    assert stored_minutes(services) == [(minute, 7.0, 1)]

    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("not a lock")

    with pytest.raises(ValueError):
        retry_busy(broken, sleep=waits.append)
    assert calls == [1]  # only a busy database is tried again


# -- each background job ----------------------------------------------------------------------------


async def test_the_sampler_restarts_after_its_loop_crashes_and_shows_failing_ticks(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = accounts.metrics
    real_run, real_sample = metrics.run, metrics.sampler.sample_off_loop
    crashes: list[int] = []

    async def crashing_once() -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the sampling loop broke")
        await real_run()

    monkeypatch.setattr(metrics, "run", crashing_once)  # what start() hands the supervisor
    accounts.supervisor.backoff = 0.05
    accounts.start()
    try:
        await until(
            lambda: job(accounts, "sampler").restarts == 1 and job(accounts, "sampler").status == RUNNING
        )
        assert job(accounts, "sampler").last_error == "RuntimeError: the sampling loop broke"

        async def failing_tick() -> Sample:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(metrics.sampler, "sample_off_loop", failing_tick)
        await until(lambda: job(accounts, "sampler").status == FAILING)
        monkeypatch.setattr(metrics.sampler, "sample_off_loop", real_sample)
        await until(lambda: job(accounts, "sampler").status == RUNNING)
        assert job(accounts, "sampler").restarts == 1  # failing ticks do not restart the loop
    finally:
        await accounts.stop()


async def test_the_alert_engine_shows_failed_writes_and_evaluations_and_recovers(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = accounts.alerts.engine
    accounts.alerts.rules.create(
        PANEL, {"name": "Hot", "metric": "cpu.percent", "op": ">=", "threshold": 50, "for_seconds": 0}
    )
    now = time.time()
    with FullDisk(accounts.db.engine, "INSERT INTO alerts"):
        engine.on_sample(Sample(ts=now, values={"cpu.percent": 90.0}, duration=0.0))  # fires: a write
        await engine.drain()
    assert job(accounts, "alerts").status == FAILING
    assert job(accounts, "alerts").problem == "the disk is full"
    engine.on_sample(Sample(ts=now + 1, values={"cpu.percent": 91.0}, duration=0.0))
    assert job(accounts, "alerts").status == FAILING  # an evaluation alone does not clear a lost write
    engine.on_sample(Sample(ts=now + 2, values={"cpu.percent": 10.0}, duration=0.0))  # resolves: a write
    await engine.drain()
    assert job(accounts, "alerts").status == RUNNING

    def broken(_sample: Sample) -> None:
        raise ZeroDivisionError("a rule divided by zero")

    monkeypatch.setattr(engine, "evaluate", broken)
    engine.on_sample(Sample(ts=now + 3, values={"cpu.percent": 10.0}, duration=0.0))
    assert job(accounts, "alerts").last_error == "ZeroDivisionError: a rule divided by zero"
    monkeypatch.undo()
    engine.on_sample(Sample(ts=now + 4, values={"cpu.percent": 10.0}, duration=0.0))
    assert job(accounts, "alerts").status == RUNNING


async def test_the_delivery_queue_survives_a_crash_and_a_failing_round_and_sends_everything(
    accounts: Services, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_loopback(accounts)
    hook = webhook(accounts, http_receiver.url("/hook"))
    alert = make_alert(accounts)
    assert hook.id is not None
    queue = accounts.notifiers.queue
    real_sleep = queue._sleep
    crashes: list[int] = []

    async def sleep_crashing_once() -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the delivery loop broke")
        await real_sleep()

    monkeypatch.setattr(queue, "_sleep", sleep_crashing_once)
    accounts.supervisor.backoff = 0.05
    accounts.start()
    try:
        await until(
            lambda: job(accounts, "delivery").restarts == 1 and job(accounts, "delivery").status == RUNNING
        )
        with FullDisk(accounts.db.engine, "INSERT INTO deliveries"):
            accounts.notifiers.dispatch(message_for(accounts, alert), [hook.id])
            await until(lambda: job(accounts, "delivery").status == FAILING)
        assert job(accounts, "delivery").problem == "the disk is full"
        assert deliveries(accounts) == []
        accounts.notifiers.dispatch(message_for(accounts, alert, state="resolved"), [hook.id])
        await until(lambda: [row.status for row in deliveries(accounts)] == ["sent", "sent"])
        assert len(http_receiver.requests) == 2
        assert job(accounts, "delivery").status == RUNNING
        assert [r.json()["state"] for r in http_receiver.requests] == ["firing", "resolved"]
    finally:
        await accounts.stop()


async def test_housekeeping_reports_a_failing_job_and_restarts_after_a_crash(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def archive() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise StorageFull()  # the archive file could not be written

    housekeeping = Housekeeping([archive], every_seconds=0.05, supervisor=accounts.supervisor)
    real_run = housekeeping.run
    crashes: list[int] = []

    async def crashing_once() -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the housekeeping loop broke")
        await real_run()

    monkeypatch.setattr(housekeeping, "run", crashing_once)
    monkeypatch.setattr(accounts, "housekeeping", housekeeping)
    accounts.supervisor.backoff = 0.05
    accounts.start()
    try:
        await until(lambda: job(accounts, "housekeeping").failures >= 2)  # the crash, then the round
        assert job(accounts, "housekeeping").problem == "the disk is full"
        await until(lambda: job(accounts, "housekeeping").status == RUNNING and len(attempts) >= 2)
        assert job(accounts, "housekeeping").restarts == 1
    finally:
        await accounts.stop()


async def test_the_plugin_watch_survives_a_failing_round_and_a_crash(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin_host, "WATCH_SECONDS", 0.01)
    catalog = accounts.plugin_catalog
    real_records = catalog.records
    plugins = accounts.plugins
    real_run = plugins.run
    crashes: list[int] = []
    broken: list[bool] = [True]

    def records() -> Any:
        if broken[0]:
            raise sqlite3.OperationalError("database is locked")
        return real_records()

    async def crashing_once() -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the plugin watch broke")
        await real_run()

    monkeypatch.setattr(catalog, "records", records)
    monkeypatch.setattr(plugins, "run", crashing_once)
    accounts.supervisor.backoff = 0.05
    accounts.start()
    try:
        await until(lambda: job(accounts, "plugins").restarts == 1 and job(accounts, "plugins").failures >= 2)
        assert job(accounts, "plugins").problem == "the database is busy"
        broken[0] = False
        await until(lambda: job(accounts, "plugins").status == RUNNING)
    finally:
        await accounts.stop()


async def test_stop_ends_every_job(running: Services) -> None:
    await until(lambda: running.metrics.running())
    names = {state.name for state in running.supervisor.states()}
    assert {"sampler", "history", "delivery", "housekeeping", "plugins", "alerts", STORAGE_JOB} <= names
    await running.stop()
    assert {state.status for state in running.supervisor.states()} == {"stopped"}
    assert not running.notifiers.queue.running()
    running.start()  # and the panel can start again (the fixture stops it at the end)
    await until(lambda: job(running, "delivery").status == RUNNING and running.notifiers.queue.running())


# -- a user action on a full disk ------------------------------------------------------------------


def test_an_audited_api_action_on_a_full_disk_is_a_readable_507_and_the_panel_recovers(
    accounts: Services,
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from nox_ui.api import API_PREFIX, create_api
    from tests.conftest import ADMIN_PASSWORD, bearer

    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))
    with TestClient(outer, client=("203.0.113.9", 5000)) as client:
        headers = bearer(client, "admin", ADMIN_PASSWORD)
        admin_id = accounts.users.get_by_username("admin").id or 0
        audited = accounts.audit.query(action="auth.token.create").total  # the sign-in's token
        with FullDisk(accounts.db.engine, "INSERT INTO audit_events"):
            refused = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}, headers=headers)
        assert refused.status_code == 507, refused.text
        assert refused.json() == {
            "detail": "the disk is full, so nothing was saved; free some space on the server and try again"
        }
        assert job(accounts, STORAGE_JOB).status == FAILING
        assert "ci" not in {token.name for token in accounts.auth.list_tokens(admin_id)}  # rolled back whole
        assert accounts.audit.query(action="auth.token.create").total == audited

        created = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}, headers=headers)
        assert created.status_code == 201, created.text
        assert job(accounts, STORAGE_JOB).status == RUNNING
        assert accounts.audit.query(action="auth.token.create").total == audited + 1


# -- what /readyz and /metrics say ------------------------------------------------------------------


async def test_readyz_and_metrics_show_each_job_and_only_admins_read_the_error(
    app_user: User, accounts: Services
) -> None:
    from tests.test_prometheus import promtool, wait_for_sample

    client = app_user.http_client
    await wait_for_sample(accounts)
    accounts.supervisor.report("history", OSError(errno.ENOSPC, "No space left on device: '/srv/nox/data'"))
    admin = accounts.users.get_by_username("admin")
    viewer = accounts.users.get_by_username("victor")
    assert admin is not None and viewer is not None
    as_admin = {"Authorization": f"Bearer {accounts.auth.issue_token(admin).token}"}
    as_viewer = {"Authorization": f"Bearer {accounts.auth.issue_token(viewer).token}"}

    anonymous = await client.get("/readyz")
    assert anonymous.status_code == 200  # the panel serves what it can while history cannot be saved
    jobs = {entry["name"]: entry for entry in anonymous.json()["jobs"]}
    assert jobs["history"] == {"name": "history", "status": "failing"}
    assert jobs["sampler"] == {"name": "sampler", "status": "running"}
    assert "/srv/nox" not in anonymous.text
    viewed = await client.get("/readyz", headers=as_viewer)
    assert "/srv/nox" not in viewed.text and "last_error" not in viewed.text

    detailed = {
        entry["name"]: entry for entry in (await client.get("/readyz", headers=as_admin)).json()["jobs"]
    }
    assert detailed["history"]["last_error"] == "OSError: [Errno 28] No space left on device: '/srv/nox/data'"
    assert detailed["history"]["problem"] == "the disk is full"
    assert detailed["history"]["failing_since"] is not None and detailed["history"]["restarts"] == 0

    scraped = await client.get("/metrics", headers=as_admin)
    assert scraped.status_code == 200
    assert 'nox_job_failing{name="history"} 1.0' in scraped.text
    assert 'nox_job_up{name="sampler"} 1.0' in scraped.text
    assert 'nox_job_restarts_total{name="delivery"} 0.0' in scraped.text
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=scraped.content, capture_output=True, timeout=30, check=False
    )
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )

    accounts.supervisor.report("history", None)
    again = {entry["name"]: entry for entry in (await client.get("/readyz")).json()["jobs"]}
    assert again["history"]["status"] == "running"


async def test_the_search_writer_restarts_after_a_full_disk_and_indexes_what_was_pending(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nox_ui.roles import Role
    from tests.test_search import eventually, found, principal, ready

    accounts.supervisor.backoff = 0.05
    accounts.search.start(accounts.supervisor)
    try:
        await ready(accounts)
        writer = accounts.search.writer
        real_apply = writer._apply
        failed: list[int] = []

        def full_once(*args: Any) -> None:
            if not failed:
                failed.append(1)
                raise OSError(errno.ENOSPC, "No space left on device")
            real_apply(*args)

        monkeypatch.setattr(writer, "_apply", full_once)
        await asyncio.to_thread(
            accounts.users.create, PANEL, "mallory", "a long enough password", Role.VIEWER
        )
        await until(lambda: job(accounts, "search").restarts == 1)
        assert job(accounts, "search").problem == "the disk is full"

        async def user_hit() -> list[str]:
            return await found(accounts, principal(accounts, "admin"), "mallory", "user")

        assert await eventually(user_hit, 10.0, "the user held back by the full disk") == ["mallory"]
    finally:
        await accounts.search.stop(accounts.supervisor)
