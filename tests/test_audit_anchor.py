"""The anchored head of the audit log: deleting the newest events, recomputing the chain, forging or
deleting the signed head file are all named by `verify`, the API and the CLI; archives, crashes and
several writing processes raise no false alarm."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from sqlalchemy import text
from sqlmodel import col, func, select

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.models import AuditEvent
from nox_ui.roles import CLI, PANEL
from nox_ui.server import prepare
from nox_ui.services import audit as audit_module
from nox_ui.services import audit_head
from nox_ui.services.audit import ANCHOR_ACTION, ARCHIVE_ACTION, GENESIS, AuditService, row_hash
from nox_ui.services.audit_head import HEAD_FILE, LOCK_FILE, AuditHead, Head, HeadUnreadable, PendingArchive
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer

ROOT = Path(__file__).resolve().parent.parent


class Killed(BaseException):
    """The process dying at that point (nothing after it runs, not even `except Exception`)."""


FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


@pytest.fixture
def log(accounts: Services) -> Services:
    """Six events: three account creations, three test events."""
    for n in range(3):
        accounts.audit.record_now(actor=None, action="test.event", outcome="success", target_id=n)
    return accounts


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """What the service logs at WARNING and above."""
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    yield messages
    logger.remove(sink)


def sql(services: Services, statement: str, **params: object) -> None:
    with services.db.engine.begin() as connection:
        connection.execute(text(statement), params)


def rows(services: Services) -> list[dict[str, object]]:
    return [json.loads(line) for line in "".join(services.audit.export("jsonl")).splitlines()]


def head_path(services: Services) -> Path:
    return services.config.data_dir / HEAD_FILE


def head_json(services: Services) -> dict[str, object]:
    return json.loads(head_path(services).read_text(encoding="utf-8"))


def newest(services: Services) -> tuple[int, str]:
    last = rows(services)[-1]
    return int(str(last["id"])), str(last["hash"])


def delete_newest(services: Services, n: int) -> None:
    sql(
        services,
        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events ORDER BY id DESC LIMIT :n)",
        n=n,
    )


def recompute_chain(services: Services, edit: Callable[[list[dict[str, object]]], None]) -> None:
    """What someone with write access to the database does: edit rows, then rehash the whole chain
    with the service's own algorithm so every link checks again."""
    stored = rows(services)
    edit(stored)
    prev = GENESIS
    for row in stored:
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
    with services.db.engine.begin() as connection:
        for row in stored:
            connection.execute(
                text("UPDATE audit_events SET details = :d, prev_hash = :p, hash = :h WHERE id = :id"),
                {"d": row["details"], "p": row["prev_hash"], "h": row["hash"], "id": row["id"]},
            )


def count_events(services: Services) -> int:
    with services.db.session() as session:
        return session.exec(select(func.count()).select_from(AuditEvent)).one()


# -- the head follows the log ---------------------------------------------------------------------


def test_each_committed_event_moves_the_private_signed_head(log: Services) -> None:
    path = head_path(log)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    last_id, last_hash = newest(log)
    head = head_json(log)
    assert (head["last_id"], head["last_hash"], head["count"], head["archive"]) == (
        last_id,
        last_hash,
        6,
        None,
    )
    assert isinstance(head["signature"], str) and len(head["signature"]) == 64
    assert log.audit.verify().ok


def test_an_event_rolled_back_does_not_move_the_head(log: Services) -> None:
    before = head_json(log)
    with log.db.session() as session:
        log.audit.record(session, actor=None, action="test.never", outcome="success")
        session.rollback()
    assert head_json(log) == before
    assert log.audit.verify().ok


def test_concurrent_writers_leave_the_head_at_the_newest_event(services: Services) -> None:
    def write() -> None:
        for i in range(10):
            services.audit.record_now(actor=None, action="test.concurrent", outcome="success", target_id=i)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    head = head_json(services)
    assert (head["last_id"], head["count"]) == (40, 40)
    assert services.audit.verify().ok


def test_verify_raises_no_false_alarm_while_events_are_appended(log: Services) -> None:
    done = threading.Event()

    def append() -> None:
        for i in range(150):
            log.audit.record_now(actor=None, action="test.busy", outcome="success", target_id=i)
        done.set()

    writer = threading.Thread(target=append)
    writer.start()
    results = []
    while not done.is_set():
        results.append(log.audit.verify())
    writer.join()
    results.append(log.audit.verify())
    assert all(result.ok for result in results), [r.reason for r in results if not r.ok]


def test_two_processes_and_this_one_append_and_the_head_keeps_up(services: Services) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nox_ui.config import Settings\n"
        "from nox_ui.server import prepare\n"
        "services = prepare(Settings(data_dir=Path(sys.argv[1]), secret_key='test-secret-key'))\n"
        "for i in range(25):\n"
        "    services.audit.record_now(actor=None, action='test.process', outcome='success', target_id=i)\n"
        "services.close()\n"
    )
    data_dir = str(services.config.data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOX_")}
    children = [
        subprocess.Popen([sys.executable, "-c", script, data_dir], cwd=ROOT, env=env) for _ in range(2)
    ]
    try:
        for i in range(25):
            services.audit.record_now(actor=None, action="test.here", outcome="success", target_id=i)
        assert [child.wait(timeout=180) for child in children] == [0, 0]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    head = head_json(services)
    assert (head["last_id"], head["count"]) == (75, 75)
    assert services.audit.verify().ok


# -- tampering with the database ------------------------------------------------------------------


def test_deleting_the_newest_three_rows_is_named(log: Services) -> None:
    last_id, last_hash = newest(log)
    delete_newest(log, 3)
    result = log.audit.verify()
    assert (result.ok, result.first_bad, result.checked) == (False, 6, 3)
    assert result.reason == (
        f"the newest 3 events are missing: the anchored head is event #6 with hash {last_hash}, "
        "the log ends at #3"
    )
    assert last_id == 6


def test_deleting_every_row_is_named(log: Services) -> None:
    _, last_hash = newest(log)
    sql(log, "DELETE FROM audit_events")
    result = log.audit.verify()
    assert not result.ok
    assert result.reason == (
        f"the newest 6 events are missing: the anchored head is event #6 with hash {last_hash}, the log is empty"
    )


def test_the_head_does_not_move_past_a_truncation(log: Services, errors: list[str]) -> None:
    """New events after a truncation reuse the deleted ids; the head must keep the evidence."""
    anchored = head_json(log)
    delete_newest(log, 3)
    for n in range(4):
        log.audit.record_now(actor=None, action="test.after", outcome="success", target_id=n)
    assert head_json(log) == anchored
    result = log.audit.verify()
    assert not result.ok and result.first_bad == 6
    assert result.reason.startswith("event #6 has hash ") and result.reason.endswith(
        f"but the anchored head says {anchored['last_hash']}: the chain was rewritten"
    )
    stuck = [m for m in errors if "audit head not moved past event #6" in m]
    assert len(stuck) == 1  # said once, not on every event


def test_a_recomputed_chain_is_named(log: Services) -> None:
    _, anchored_hash = newest(log)

    def forge(stored: list[dict[str, object]]) -> None:
        stored[1]["details"] = '{"role": "viewer"}'

    recompute_chain(log, forge)
    _, new_hash = newest(log)
    result = log.audit.verify()
    assert (result.ok, result.first_bad) == (False, 6)
    assert result.reason == (
        f"event #6 has hash {new_hash}, but the anchored head says {anchored_hash}: the chain was rewritten"
    )


def test_deleting_a_row_and_recomputing_the_chain_is_named(log: Services) -> None:
    sql(log, "DELETE FROM audit_events WHERE id = 2")
    recompute_chain(log, lambda stored: None)
    result = log.audit.verify()
    assert (result.ok, result.first_bad) == (False, 6)
    assert result.reason.endswith("the chain was rewritten")


def test_a_checkpoint_forged_after_the_head_does_not_excuse_deleted_rows(log: Services) -> None:
    """Deleting the oldest rows and appending an `audit.archive` row that vouches for them passes the
    chain walk; the count the head keeps does not."""
    stored = rows(log)
    sql(log, "DELETE FROM audit_events WHERE id <= 2")
    forged = {
        **stored[-1],
        "id": 7,
        "action": ARCHIVE_ACTION,
        "details": json.dumps({"through_id": 2, "through_hash": stored[1]["hash"], "count": 2}),
        "prev_hash": stored[-1]["hash"],
    }
    forged["hash"] = row_hash(forged)
    with log.db.session() as session:
        session.add(
            AuditEvent(
                id=7,
                ts=datetime.fromisoformat(str(forged["ts"])),
                actor_name=str(forged["actor_name"]),
                actor_role=str(forged["actor_role"]),
                action=ARCHIVE_ACTION,
                target_type=str(forged["target_type"]),
                target_id=str(forged["target_id"]),
                target_label=str(forged["target_label"]),
                source_ip=str(forged["source_ip"]),
                outcome=str(forged["outcome"]),
                details=str(forged["details"]),
                prev_hash=str(forged["prev_hash"]),
                hash=str(forged["hash"]),
            )
        )
        session.commit()
    result = log.audit.verify()
    assert not result.ok
    assert result.reason == "2 events missing up to the anchored head #6: the head counts 6, the log holds 4"


# -- tampering with the head file -----------------------------------------------------------------


def test_an_edited_head_fails_on_its_signature(log: Services) -> None:
    """Hiding a truncation by moving the head back to the new last row needs the key."""
    delete_newest(log, 3)
    head = head_json(log)
    head["last_id"], head["last_hash"], head["count"] = 3, rows(log)[-1]["hash"], 3
    head_path(log).write_text(json.dumps(head), encoding="utf-8")
    result = log.audit.verify()
    assert not result.ok and result.first_bad is None
    assert result.reason == (
        f"the audit head file {head_path(log)} has a bad signature (forged, or signed with another secret key)"
    )


def test_a_head_signed_with_another_key_or_not_a_head_at_all_fails(log: Services) -> None:
    last_id, last_hash = newest(log)
    other = AuditHead(log.config.data_dir, "someone else's key")
    with other.locked():
        other.write(Head(last_id=last_id, last_hash=last_hash, count=6))
    assert "has a bad signature" in log.audit.verify().reason

    head_path(log).write_text("{not json", encoding="utf-8")
    result = log.audit.verify()
    assert not result.ok
    assert result.reason == f"the audit head file {head_path(log)} is not a signed audit head"


def test_a_deleted_head_fails_and_is_not_recreated_by_new_events_or_a_restart(log: Services) -> None:
    head_path(log).unlink()
    message = (
        f"the audit head file {head_path(log)} is missing, but the log holds 6 events: deleting the newest "
        "ones cannot be ruled out (restore the file from a backup, or re-anchor the log after checking it: "
        "nox-ui audit reanchor)"
    )
    assert log.audit.verify().reason == message
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    assert not head_path(log).exists()

    again = prepare(log.config)
    try:
        assert not head_path(log).exists()
        assert not again.audit.verify().ok
    finally:
        again.close()


def test_an_empty_log_without_a_head_verifies(services: Services) -> None:
    head_path(services).unlink()
    assert services.audit.verify().ok


def test_reanchor_replaces_a_missing_head_and_says_so_in_the_log(log: Services) -> None:
    head_path(log).unlink()
    anchored = log.audit.reanchor(CLI, reason="head lost with the old disk")
    assert (anchored.last_id, anchored.count) == (6, 6)
    assert log.audit.verify().ok
    event = log.audit.query(action=ANCHOR_ACTION).events[0]
    assert event.id == 7 and head_json(log)["last_id"] == 7
    assert json.loads(event.details) == {
        "reason": "head lost with the old disk",
        "events": 6,
        "previous_head": "missing",
    }


# -- start, archive, crash ------------------------------------------------------------------------


def test_an_install_from_before_the_head_is_anchored_at_start(log: Services, errors: list[str]) -> None:
    head_path(log).unlink()
    (log.config.data_dir / LOCK_FILE).unlink()
    upgraded = prepare(log.config)
    try:
        assert upgraded.audit.verify().ok
        event = upgraded.audit.query(action=ANCHOR_ACTION).events[0]
        assert (event.id, event.actor_name, event.target_id) == (7, "system", "6")
        assert json.loads(event.details) == {"reason": "first anchored start", "events": 6}
        assert head_json(log)["last_id"] == 7
    finally:
        upgraded.close()
    assert any("anchored the existing 6 events at event #6" in message for message in errors)


def test_archive_then_verify_is_ok_and_the_head_follows(log: Services) -> None:
    done = log.audit.archive(PANEL, FUTURE, log.config.data_dir / "backups")
    assert done.count == 6
    head = head_json(log)
    assert (head["last_id"], head["count"], head["archive"]) == (7, 1, None)
    assert log.audit.verify().ok
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    assert log.audit.verify().ok and head_json(log)["count"] == 2


@pytest.mark.parametrize("before", [datetime(2000, 1, 1, tzinfo=UTC), FUTURE])
def test_a_crash_between_an_archive_commit_and_the_head_update_is_no_alarm(
    services: Services, monkeypatch: pytest.MonkeyPatch, before: datetime
) -> None:
    """The archive signs its intent into the head before it commits; if the process dies before the
    head catches up, the announced archive explains the moved rows (the anchored one among them)."""
    log = services
    with monkeypatch.context() as clock:
        clock.setattr(audit_module, "utcnow", lambda: datetime(1999, 1, 1, tzinfo=UTC))
        for n in range(3):
            log.audit.record_now(actor=None, action="test.old", outcome="success", target_id=n)
    for n in range(4):
        log.audit.record_now(actor=None, action="test.new", outcome="success", target_id=n)
    monkeypatch.setattr(AuditService, "_advance_logged", lambda self: None)
    done = log.audit.archive(PANEL, before, log.config.data_dir / "backups")
    assert done.count == (3 if before.year == 2000 else 7)
    pending = head_json(log)["archive"]
    assert isinstance(pending, dict) and pending["marker_id"] == 8
    assert log.audit.verify().ok

    monkeypatch.undo()
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    head = head_json(log)
    assert (head["last_id"], head["archive"]) == (9, None)
    assert head["count"] == count_events(log)
    assert log.audit.verify().ok


def test_an_archive_that_never_committed_leaves_no_trace(
    log: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after announcing, before committing: the announcement is ignored, then dropped."""
    real = AuditService._announce_archive

    def announce_then_die(self: AuditService, pending: PendingArchive) -> None:
        real(self, pending)
        raise Killed

    monkeypatch.setattr(AuditService, "_announce_archive", announce_then_die)
    monkeypatch.setattr(AuditService, "_withdraw_archive", lambda self, pending: None)
    with pytest.raises(Killed):
        log.audit.archive(PANEL, FUTURE, log.config.data_dir / "backups")
    monkeypatch.undo()
    assert head_json(log)["archive"] is not None
    assert count_events(log) == 6 and log.audit.verify().ok
    log.audit.record_now(actor=None, action="test.after", outcome="success")  # takes the marker's id
    head = head_json(log)
    assert (head["last_id"], head["count"], head["archive"]) == (7, 7, None)
    assert log.audit.verify().ok


# -- key rotation ---------------------------------------------------------------------------------


def test_resign_head_moves_the_head_to_a_new_key(log: Services) -> None:
    data_dir = log.config.data_dir
    assert log.audit.resign_head("the new secret key") is True
    with pytest.raises(HeadUnreadable, match="bad signature"):
        AuditHead(data_dir, "test-secret-key").read()
    assert AuditHead(data_dir, "the new secret key").read().last_id == 6
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    assert AuditHead(data_dir, "the new secret key").read().last_id == 7
    assert log.audit.verify().ok
    # While a rotation runs, a process still on the old key accepts heads signed with the next one.
    assert AuditHead(data_dir, "test-secret-key", ["the new secret key"]).read().last_id == 7


def test_resign_head_refuses_a_forged_head(log: Services) -> None:
    head = head_json(log)
    head["count"] = 99
    head_path(log).write_text(json.dumps(head), encoding="utf-8")
    with pytest.raises(HeadUnreadable, match="bad signature"):
        log.audit.resign_head("the new secret key")
    assert json.loads(head_path(log).read_text(encoding="utf-8"))["count"] == 99


def test_resign_head_when_the_new_key_already_came_from_the_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = prepare(Settings(data_dir=data_dir, secret_key="the old key"))
    before.audit.record_now(actor=None, action="test.event", outcome="success")
    before.close()
    after = prepare(Settings(data_dir=data_dir, secret_key="the new key"))
    try:
        assert "bad signature" in after.audit.verify().reason
        with pytest.raises(HeadUnreadable, match="bad signature"):
            after.audit.resign_head("the new key")
        assert after.audit.resign_head("the new key", previous_keys=["the old key"]) is True
        assert after.audit.verify().ok
    finally:
        after.close()


def test_resign_head_without_a_head_file_re_signs_nothing(log: Services) -> None:
    head_path(log).unlink()
    assert log.audit.resign_head("the new secret key") is False
    assert not head_path(log).exists() and not log.audit.verify().ok


# -- API ------------------------------------------------------------------------------------------


def test_api_verify_names_a_truncation(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "admin", ADMIN_PASSWORD)
    _, last_hash = newest(accounts)  # 5: three accounts, a sign-in, a token
    delete_newest(accounts, 2)
    body = api.get("/api/v1/audit/verify", headers=headers).json()
    assert body == {
        "ok": False,
        "checked": 3,
        "first_bad": 5,
        "reason": f"the newest 2 events are missing: the anchored head is event #5 with hash {last_hash}, "
        "the log ends at #3",
    }


# -- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    monkeypatch.delenv("NOX_SECRET_KEY", raising=False)
    services = prepare(Settings(data_dir=data_dir))
    try:
        services.users.create(PANEL, "admin", ADMIN_PASSWORD, "admin")
        services.users.create(PANEL, "victor", VIEWER_PASSWORD, "viewer")
        services.users.create(PANEL, "olga", VIEWER_PASSWORD, "viewer")
        services.users.create(PANEL, "nina", VIEWER_PASSWORD, "viewer")
    finally:
        services.close()
    return data_dir


def _offline(data_dir: Path, action: Callable[[Services], None]) -> None:
    services = prepare(Settings(data_dir=data_dir))
    try:
        action(services)
    finally:
        services.close()


def _forge_head(services: Services) -> None:
    head = head_json(services)
    head["count"] = 3
    head_path(services).write_text(json.dumps(head), encoding="utf-8")


def _forge_row(stored: list[dict[str, object]]) -> None:
    stored[1]["details"] = '{"role": "admin"}'


TAMPERING: dict[str, tuple[Callable[[Services], None], str]] = {
    "truncated": (lambda s: delete_newest(s, 3), "audit log broken: the newest 3 events are missing: "),
    "recomputed": (lambda s: recompute_chain(s, _forge_row), "audit log broken: event #4 has hash "),
    "forged head": (_forge_head, "has a bad signature (forged, or signed with another secret key)"),
    "deleted head": (lambda s: head_path(s).unlink(), "is missing, but the log holds 4 events"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_cli_verify_fails_in_one_line(cli_dir: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    tamper, message = TAMPERING[case]
    _offline(cli_dir, tamper)
    assert main(["audit", "verify"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("nox-ui: error: audit log broken: ") and message in err, err


def test_cli_reanchor_after_a_lost_head(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cli_dir / HEAD_FILE).unlink()
    assert main(["audit", "verify"]) == 1
    capsys.readouterr()
    assert main(["audit", "reanchor", "--reason", "restored the data dir without the head"]) == 0
    assert capsys.readouterr().out == "audit log re-anchored at event 4 (4 events)\n"
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == "audit log intact: 5 events\n"


def test_the_head_adds_no_rows_to_the_log(log: Services) -> None:
    """The head adds no rows of its own: the log is exactly the events recorded."""
    with log.db.session() as session:
        actions = list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))))
    assert actions == ["user.create"] * 3 + ["test.event"] * 3


def test_a_hung_lock_holder_delays_no_event_and_the_head_catches_up(
    log: Services, monkeypatch: pytest.MonkeyPatch, errors: list[str]
) -> None:
    monkeypatch.setattr(audit_head, "LOCK_WAIT", 0.2)
    before = head_json(log)
    fd = os.open(log.config.data_dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process, suspended while it held the lock
        event = log.audit.record_now(actor=None, action="test.during", outcome="success")
        assert event.id == 7 and head_json(log) == before
    finally:
        os.close(fd)
    assert any("audit head" in message and "not updated" in message for message in errors)
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    assert (head_json(log)["last_id"], head_json(log)["count"]) == (8, 8)
    assert log.audit.verify().ok
