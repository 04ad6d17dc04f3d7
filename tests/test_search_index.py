"""The search index's upkeep, on a real SQLite file and real index folders: a corrupt or stale index is
rebuilt at start in a child process while searches answer "rebuilding", a full disk fails the writer
job which then recovers with nothing lost, `nox-ui search reindex` beside a running panel (which adopts
the new build), changes made by another process caught up at start, and a panel with nothing to index
never importing the engine (the memory budget)."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.models import AuditEvent
from nox_ui.roles import PANEL, Role
from nox_ui.search.build import rebuild_index
from nox_ui.search.index import META, SCHEMA_VERSION, IndexLayout
from nox_ui.server import prepare, prepare_core
from tests.test_search import FINDABLE, eventually, found, live, principal, ready

__all__ = ["live"]  # the fixture, shared with tests/test_search.py


def layout(settings: Settings) -> IndexLayout:
    return IndexLayout(settings.data_dir / "index")


@pytest.fixture
def panel_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI (and the panel's child process) reading the same data dir and key as `settings`."""
    monkeypatch.setenv("NOX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NOX_SECRET_KEY", "test-secret-key")
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    return settings


@pytest.fixture
def built(panel_env: Settings) -> Iterator[Settings]:
    """A data dir with an admin, a user and a published index that holds them; nothing running."""
    core = prepare_core(panel_env)
    try:
        core.users.create(PANEL, "admin", "correct horse battery", Role.ADMIN)
        core.users.create(PANEL, "ursula", "correct horse battery", Role.VIEWER, display_name="Ursula Keel")
        rebuild_index(core.db, layout(panel_env))
    finally:
        core.close()
    yield panel_env


async def start(settings: Settings) -> Services:
    services = prepare(settings)
    services.search.start(services.supervisor)
    return services


async def finish(services: Services) -> None:
    await services.search.stop(services.supervisor)
    services.close()


# -- rebuilt at start ----------------------------------------------------------------------------------


async def test_a_corrupt_index_is_rebuilt_at_start_while_searches_answer_rebuilding(built: Settings) -> None:
    old = layout(built).current()
    assert old is not None
    for path in old.path.iterdir():
        if path.name != META:  # the meta file says all is well: only the engine can tell
            path.write_bytes(b"\x00garbage\xff" * 64)
    services = await start(built)
    try:
        first = await services.search.search(PANEL, "ursula")
        assert first.state == "rebuilding" and first.message
        assert not [h for h in first.hits if h.type != "process"]

        async def back() -> bool:
            results = await services.search.search(PANEL, "ursula")
            return results.state == "ready" and "Ursula Keel" in [h.title for h in results.hits]

        await eventually(back, what="results from the rebuilt index")
        new = layout(built).current()
        assert new is not None and new.id != old.id
        assert not old.path.exists() or old.id != new.id
    finally:
        await finish(services)


async def test_an_index_of_another_schema_version_is_rebuilt_at_start(built: Settings) -> None:
    old = layout(built).current()
    assert old is not None
    meta = json.loads((old.path / META).read_text())
    meta["version"] = SCHEMA_VERSION - 1
    (old.path / META).write_text(json.dumps(meta))
    services = await start(built)
    try:
        first = await services.search.search(PANEL, "ursula")
        assert first.state == "rebuilding"
        await ready(services)
        current = layout(built).current()
        assert current is not None and current.id != old.id
        assert json.loads((current.path / META).read_text())["version"] == SCHEMA_VERSION
        assert await found(services, principal(services, "admin"), "ursula", "user") == ["Ursula Keel"]
        assert services.search.status().state == "ready"
    finally:
        await finish(services)


async def test_changes_made_by_another_process_are_caught_up_at_start(built: Settings) -> None:
    other = prepare_core(built)  # the CLI, while no panel runs: its commits reach no writer
    try:
        other.users.create(PANEL, "latecomer", "correct horse battery", Role.VIEWER)
        ursula = other.users.get_by_username("ursula")
        assert ursula.id is not None
        other.users.delete(PANEL, ursula.id)
    finally:
        other.close()
    services = await start(built)
    try:
        await ready(services)
        admin = principal(services, "admin")
        assert await found(services, admin, "latecomer", "user") == ["latecomer"]
        assert await found(services, admin, "ursula", "user") == []
        assert await found(services, admin, "user.delete", "audit")  # the audit tail too
    finally:
        await finish(services)


# -- a full disk ---------------------------------------------------------------------------------------


async def test_a_full_disk_fails_the_writer_job_which_recovers_with_nothing_lost(
    live: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whoosh.writing import SegmentWriter

    disk = {"full": True}
    commit = SegmentWriter.commit

    def full_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(SegmentWriter, "commit", full_commit)
    admin = principal(live, "admin")
    for name in ("spacey", "spacious"):
        await asyncio.to_thread(live.users.create, PANEL, name, "a long enough password", Role.VIEWER)

    async def failing() -> Any:
        state = live.supervisor.state("search")
        return state if state is not None and state.status == "failing" else None

    state = await eventually(failing, what="the search job failing")
    assert "search index: no space left on device" in (state.last_error or "")
    assert state.problem == "the disk is full"
    assert "no space left on device" in live.search.status().last_error
    assert await found(live, admin, "spacey", "user") == []  # searches go on, from the last commit
    disk["full"] = False

    async def both() -> bool:
        return await found(live, admin, "spac*", "user") == ["spacey", "spacious"] or await found(
            live, admin, "spac*", "user"
        ) == ["spacious", "spacey"]

    await eventually(both, what="both users, once there is space again")

    async def running() -> bool:
        state = live.supervisor.state("search")
        return state is not None and state.status == "running"

    await eventually(running, what="the job running again")
    assert live.search.status().last_error == ""


# -- the command line -----------------------------------------------------------------------------------


async def test_cli_reindex_beside_a_running_panel_which_adopts_the_new_build(
    live: Services, panel_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    before = layout(panel_env).current()
    other = prepare_core(panel_env)  # a commit the panel's writer never hears of
    try:
        other.users.create(PANEL, "outsider", "correct horse battery", Role.VIEWER)
    finally:
        other.close()
    admin = principal(live, "admin")
    assert await found(live, admin, "outsider", "user") == []
    code = await asyncio.to_thread(main, ["search", "reindex"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert any(line.startswith("indexing:") and "%" in line for line in lines)
    assert lines[-1].startswith("search index rebuilt:")
    after = layout(panel_env).current()
    assert before is not None and after is not None and after.id != before.id

    async def adopted() -> bool:
        return await found(live, admin, "outsider", "user") == ["outsider"]

    await eventually(adopted, what="the panel searching the new build")
    # and writing to it: a change after the swap is findable too
    await asyncio.to_thread(live.users.create, PANEL, "afterwards", "a long enough password", Role.VIEWER)
    assert await eventually(lambda: found(live, admin, "afterwards", "user"), FINDABLE) == ["afterwards"]
    with live.db.session() as session:
        from sqlmodel import select

        actions = session.exec(select(AuditEvent.action).where(AuditEvent.action == "search.reindex")).all()
    assert actions


def test_cli_reindex_fails_with_one_line_when_the_index_cannot_be_written(
    panel_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare_core(panel_env).close()
    blocked = panel_env.data_dir / "index" / "current"  # a folder where the build's symlink goes
    blocked.mkdir()
    (blocked / "keep").write_text("not an index")
    code = main(["search", "reindex"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("nox-ui: error: search index: ") and err.count("\n") == 1
    assert "indexing:" in out  # the progress it made before the swap failed
    left = [p.name for p in (panel_env.data_dir / "index").iterdir() if p.name != ".swap.lock"]
    assert left == ["current"]  # the half-done build is removed


# -- memory --------------------------------------------------------------------------------------------


def test_an_idle_panel_with_an_index_up_to_date_never_imports_the_engine(built: Settings) -> None:
    """`nox-ui serve` at idle stays within its memory budget: Whoosh (~3.5 MiB) is loaded only to write
    or search. A fresh interpreter starts the search service on an up-to-date index and waits until the
    writer has compared it with the database."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from nox_ui.config import Settings
        from nox_ui.server import prepare

        async def main():
            services = prepare(Settings(data_dir={str(built.data_dir)!r}, secret_key="test-secret-key"))
            services.search.start(services.supervisor)
            caught_up = await asyncio.to_thread(services.search.writer.caught_up.wait, 60)
            status = services.search.status()
            print(caught_up, status.state, status.documents, "whoosh" in sys.modules)
            await services.search.stop(services.supervisor)
            services.close()

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    caught_up, state, documents, imported = done.stdout.split()
    assert (caught_up, state, imported) == ("True", "ready", "False")
    assert int(documents) > 0


def test_the_cli_and_the_core_do_not_import_the_engine(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import nox_ui.search, nox_ui.search.service, nox_ui.cli; print('whoosh' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "False", done.stderr
