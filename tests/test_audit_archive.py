"""Audit retention: old events move to a checkpointed file and the chain still verifies, in the log
and in the files; tampering with either is named; a failed archive deletes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nicegui.testing import User
from sqlalchemy import text
from sqlmodel import col, select

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.errors import Forbidden
from nox_ui.models import AuditEvent
from nox_ui.roles import PANEL, Principal, Role
from nox_ui.server import prepare
from nox_ui.services import audit as audit_module
from nox_ui.services.audit import (
    ARCHIVE_ACTION,
    GENESIS,
    ArchiveError,
    AuditService,
    chain_hash,
    row_hash,
    verify_archive,
)
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer, sign_in

ADMIN = Principal(user_id=1, username="admin", role=Role.ADMIN)
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


class Clock:
    """The time the audit service stamps events with."""

    def __init__(self) -> None:
        self.now = JAN

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(audit_module, "utcnow", fake)
    return fake


@pytest.fixture
def log(clock: Clock, accounts: Services) -> Services:
    """Three account creations in January (ids 1-3), two events in February (ids 4-5)."""
    clock.now = FEB
    for n in range(2):
        accounts.audit.record_now(actor=ADMIN, action="test.event", outcome="success", target_id=n)
    return accounts


def backups(services: Services) -> Path:
    return services.config.data_dir / "backups"


def ids(services: Services) -> list[int]:
    with services.db.session() as session:
        return [i or 0 for i in session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id)))]


def jsonl(services: Services) -> list[str]:
    return "".join(services.audit.export("jsonl")).splitlines(keepends=True)


def sql(services: Services, statement: str, **params: object) -> None:
    with services.db.engine.begin() as connection:
        connection.execute(text(statement), params)


def rewrite(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def rows_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- archiving ------------------------------------------------------------------------------------


def test_archive_moves_old_events_to_a_private_file_and_the_chain_still_verifies(log: Services) -> None:
    before = jsonl(log)
    done = log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    assert (done.count, done.through_id) == (3, 3)
    assert done.path is not None and done.path.parent == backups(log)
    assert done.path.name.startswith("audit-archive-1-3-") and done.path.suffix == ".jsonl"
    assert stat.S_IMODE(done.path.stat().st_mode) == 0o600
    assert list(backups(log).iterdir()) == [done.path]

    # The file holds the rows exactly as `export --format jsonl` wrote them.
    content = done.path.read_text(encoding="utf-8")
    assert content == "".join(before[:3])
    assert ids(log) == [4, 5, 6]
    assert log.audit.verify() == audit_module.VerifyResult(ok=True, checked=3, first_bad=None)

    checkpoint = log.audit.query(action=ARCHIVE_ACTION).events[0]
    assert (checkpoint.id, checkpoint.actor_name, checkpoint.outcome) == (6, "system", "success")
    assert (checkpoint.target_type, checkpoint.target_id, checkpoint.target_label) == (
        "audit",
        "1-3",
        done.path.name,
    )
    details = json.loads(checkpoint.details)
    assert details == {
        "before": "2026-01-15T00:00:00+00:00",
        "count": 3,
        "file": done.path.name,
        "file_sha256": hashlib.sha256(done.path.read_bytes()).hexdigest(),
        "through_hash": json.loads(before[2])["hash"],
        "through_id": 3,
    }
    assert checkpoint.prev_hash == json.loads(before[4])["hash"]

    # The file verifies by itself, and the log vouches for it.
    check = verify_archive(done.path)
    assert (check.ok, check.checked, check.first_id, check.last_id) == (True, 3, 1, 3)
    assert (check.start_hash, check.end_hash) == (GENESIS, details["through_hash"])
    assert [c.ok for c in log.audit.verify_archives([done.path])] == [True]


def test_every_event_older_than_the_cutoff_goes_even_after_a_newer_one(log: Services, clock: Clock) -> None:
    """The prefix ends at the newest old event, so "events before X are archived" holds."""
    clock.now = JAN + timedelta(days=2)  # a clock stepped back: event 6 is older than 4 and 5
    log.audit.record_now(actor=None, action="test.late", outcome="success")
    done = log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    assert (done.count, done.through_id) == (6, 6)
    assert ids(log) == [7]
    assert log.audit.verify().ok


def test_a_checkpoint_left_alone_verifies_when_everything_else_was_archived(log: Services) -> None:
    done = log.audit.archive(PANEL, MAR, backups(log))
    assert done.count == 5 and ids(log) == [6]
    assert log.audit.verify() == audit_module.VerifyResult(ok=True, checked=1, first_bad=None)
    log.audit.record_now(actor=None, action="test.after", outcome="success")
    assert ids(log) == [6, 7] and log.audit.verify().ok


def test_nothing_to_archive_changes_nothing(log: Services) -> None:
    assert log.audit.archive(PANEL, JAN - timedelta(days=1), backups(log)).count == 0
    assert list(backups(log).iterdir()) == []
    assert ids(log) == [1, 2, 3, 4, 5]
    assert log.audit.query(action=ARCHIVE_ACTION).total == 0
    assert log.audit.verify().ok


def test_a_naive_cutoff_is_utc(log: Services) -> None:
    assert log.audit.archive(PANEL, datetime(2026, 1, 15), backups(log)).count == 3


def test_two_archives_the_second_taking_the_first_checkpoint(log: Services, clock: Clock) -> None:
    clock.now = FEB + timedelta(days=9)
    first = log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))  # ids 1-3; checkpoint 6
    clock.now = MAR + timedelta(days=4)
    log.audit.record_now(actor=None, action="test.march", outcome="success")  # id 7
    assert log.audit.verify().ok

    second = log.audit.archive(PANEL, MAR, backups(log))  # ids 4-6, with the first checkpoint; checkpoint 8
    assert (second.count, second.through_id) == (3, 6)
    assert second.path is not None and first.path is not None
    assert second.path.name.startswith("audit-archive-4-6-")
    assert ids(log) == [7, 8]
    assert log.audit.verify() == audit_module.VerifyResult(ok=True, checked=2, first_bad=None)
    assert [row["action"] for row in rows_of(second.path)] == ["test.event", "test.event", ARCHIVE_ACTION]

    first_check, second_check = verify_archive(first.path), verify_archive(second.path)
    assert first_check.ok and second_check.ok
    assert second_check.start_hash == first_check.end_hash
    assert [c.ok for c in log.audit.verify_archives([first.path, second.path])] == [True, True]
    assert [c.ok for c in log.audit.verify_archives([second.path, first.path])] == [True, True]
    # The first file's checkpoint is now in the second file only.
    alone = log.audit.verify_archives([first.path])[0]
    assert (alone.ok, alone.first_bad) == (False, 3)
    assert "vouches" in alone.reason

    # A third archive takes the second checkpoint; the log and all three files still check out.
    clock.now = MAR + timedelta(days=20)
    third = log.audit.archive(PANEL, MAR + timedelta(days=10), backups(log))
    assert (third.count, third.through_id) == (2, 8)
    assert ids(log) == [9] and log.audit.verify().ok
    assert third.path is not None
    assert all(c.ok for c in log.audit.verify_archives([first.path, second.path, third.path]))
    # Without the third file nothing in the log vouches for the second, nor so for the first.
    assert [c.ok for c in log.audit.verify_archives([first.path, second.path])] == [False, False]


def test_archiving_while_others_write_keeps_one_chain(services: Services) -> None:
    def write(name: str) -> None:
        for n in range(20):
            services.audit.record_now(actor=None, action=f"test.{name}", outcome="success", target_id=n)

    writers = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(4)]
    for thread in writers:
        thread.start()
    archived = 0
    for _ in range(5):
        archived += services.audit.archive(
            PANEL, datetime.now(UTC) + timedelta(hours=1), backups(services)
        ).count
    for thread in writers:
        thread.join()
    assert services.audit.verify().ok
    files = sorted(backups(services).iterdir())
    assert all(c.ok for c in services.audit.verify_archives(files))
    assert sum(c.checked for c in services.audit.verify_archives(files)) == archived
    remaining = services.audit.query(limit=1000, action="test").total
    archived_tests = sum(1 for f in files for row in rows_of(f) if str(row["action"]).startswith("test."))
    assert remaining + archived_tests == 80


def test_an_archive_during_verify_is_not_a_break(log: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """`verify` reads in batches; rows an archive removes between two batches leave no false gap."""
    monkeypatch.setattr(audit_module, "_BATCH", 2)
    original = AuditService._in_order

    def interleaved(self: AuditService) -> Iterator[AuditEvent]:
        for index, event in enumerate(original(self)):
            yield event
            if index == 1:
                assert self.archive(PANEL, FEB + timedelta(days=1), backups(log)).count == 5

    monkeypatch.setattr(AuditService, "_in_order", interleaved)
    assert log.audit.verify().ok


# -- tampering ------------------------------------------------------------------------------------


def test_deleting_leading_rows_without_an_archive_is_named(log: Services) -> None:
    sql(log, "DELETE FROM audit_events WHERE id <= 2")
    assert log.audit.verify() == audit_module.VerifyResult(ok=False, checked=1, first_bad=3)


def test_deleting_leading_rows_after_an_archive_is_named(log: Services) -> None:
    log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    sql(log, "DELETE FROM audit_events WHERE id = 4")
    assert log.audit.verify() == audit_module.VerifyResult(ok=False, checked=1, first_bad=5)


def test_editing_a_row_after_an_archive_is_named(log: Services) -> None:
    log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    sql(log, "UPDATE audit_events SET details = '{\"forged\": true}' WHERE id = 5")
    assert log.audit.verify() == audit_module.VerifyResult(ok=False, checked=2, first_bad=5)


def test_a_forged_checkpoint_is_not_a_voucher(log: Services) -> None:
    log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    sql(log, "UPDATE audit_events SET details = '{}' WHERE id = 6")
    assert log.audit.verify() == audit_module.VerifyResult(ok=False, checked=1, first_bad=4)


def test_a_row_slipped_in_before_the_checkpointed_one_is_named(log: Services) -> None:
    """A checkpoint vouches only for the oldest row: a forged, self-consistent row put before it breaks."""
    log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    forged = AuditEvent(id=2, ts=JAN, action="user.create", outcome="success", prev_hash=GENESIS, hash="")
    forged.hash = chain_hash(forged)
    with log.db.session() as session:
        session.add(forged)
        session.commit()
    assert log.audit.verify() == audit_module.VerifyResult(ok=False, checked=2, first_bad=4)


def test_an_edited_archive_file_names_the_row(log: Services) -> None:
    done = log.audit.archive(PANEL, JAN + timedelta(days=14), backups(log))
    assert done.path is not None
    original = rows_of(done.path)

    edited = [dict(row) for row in original]
    edited[1]["target_label"] = "mallory"
    rewrite(done.path, edited)
    check = verify_archive(done.path)
    assert (check.ok, check.checked, check.first_bad) == (False, 2, 2)
    assert check.reason == "event 2 does not match its hash"
    assert [c.first_bad for c in log.audit.verify_archives([done.path])] == [2]

    rewrite(done.path, [original[0], original[2]])
    check = verify_archive(done.path)
    assert (check.ok, check.first_bad, check.reason) == (False, 3, "event 3 does not link to event 1")

    done.path.write_text(json.dumps(original[0]) + "\nnot json\n", encoding="utf-8")
    check = verify_archive(done.path)
    assert (check.ok, check.first_bad, check.reason) == (False, None, "line 2 is not an exported audit event")

    # Re-hashing the whole file makes it consistent, but no checkpoint vouches for its new end.
    prev = GENESIS
    for row in edited:
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
    rewrite(done.path, edited)
    assert verify_archive(done.path).ok
    vouched = log.audit.verify_archives([done.path])[0]
    assert (vouched.ok, vouched.first_bad) == (False, 3)


def test_an_empty_or_missing_file_does_not_verify(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert (verify_archive(empty).ok, verify_archive(empty).reason) == (False, "no events in the file")
    missing = verify_archive(tmp_path / "missing.jsonl")
    assert not missing.ok and missing.reason.startswith("cannot read")


# -- failures delete nothing ----------------------------------------------------------------------


def test_a_directory_that_cannot_be_written_deletes_nothing(log: Services, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    before = jsonl(log)
    with pytest.raises(ArchiveError, match="cannot write the audit archive"):
        log.audit.archive(PANEL, MAR, blocker / "backups")
    assert jsonl(log) == before
    assert log.audit.verify().ok


def test_a_failure_while_writing_deletes_nothing_and_leaves_no_file(
    log: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = jsonl(log)
    written: list[str] = []
    real = audit_module.jsonl_line

    def failing(event: AuditEvent) -> str:
        if written:
            raise OSError(28, "No space left on device")
        written.append(real(event))
        return written[-1]

    monkeypatch.setattr(audit_module, "jsonl_line", failing)
    with pytest.raises(ArchiveError, match="No space left on device"):
        log.audit.archive(PANEL, MAR, backups(log))
    monkeypatch.undo()
    assert list(backups(log).iterdir()) == []
    assert jsonl(log) == before
    assert log.audit.verify().ok


def test_a_failure_after_the_file_is_written_removes_it(
    log: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = jsonl(log)

    def broken(session: object, event: AuditEvent) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(AuditService, "_link", staticmethod(broken))
    with pytest.raises(RuntimeError, match="database went away"):
        log.audit.archive(PANEL, MAR, backups(log))
    monkeypatch.undo()
    assert list(backups(log).iterdir()) == []
    assert jsonl(log) == before
    assert log.audit.verify().ok


def test_archiving_is_for_admins(log: Services) -> None:
    viewer = Principal(user_id=3, username="victor", role=Role.VIEWER)
    with pytest.raises(Forbidden):
        log.audit.archive(viewer, MAR, backups(log))
    assert ids(log) == [1, 2, 3, 4, 5]
    done = log.audit.archive(ADMIN, MAR, backups(log), ip="192.0.2.4")
    checkpoint = log.audit.query(action=ARCHIVE_ACTION).events[0]
    assert done.count == 5
    assert (checkpoint.actor_name, checkpoint.actor_role, checkpoint.source_ip) == (
        "admin",
        "admin",
        "192.0.2.4",
    )


# -- API ------------------------------------------------------------------------------------------


def test_api_archives_and_the_chain_still_verifies(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "admin", ADMIN_PASSWORD)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = api.post("/api/v1/audit/archive", json={"before": future}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["archived"] == 5 and body["file"].startswith("audit-archive-1-5-")
    assert (backups(accounts) / body["file"]).is_file()
    assert api.get("/api/v1/audit/verify", headers=headers).json() == {
        "ok": True,
        "checked": 1,
        "first_bad": None,
        "reason": "",
    }
    checkpoint = accounts.audit.query(action=ARCHIVE_ACTION).events[0]
    assert (checkpoint.actor_name, checkpoint.source_ip) == ("admin", "203.0.113.9")

    past = api.post("/api/v1/audit/archive", json={"before": "2000-01-01"}, headers=headers)
    assert past.json() == {"archived": 0, "file": None}
    assert api.post("/api/v1/audit/archive", json={"before": "soon"}, headers=headers).status_code == 422
    assert api.post("/api/v1/audit/archive", json={}, headers=headers).status_code == 422


def test_api_refuses_a_viewer_archive(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    response = api.post("/api/v1/audit/archive", json={"before": "2999-01-01"}, headers=headers)
    assert response.status_code == 403
    assert list(backups(accounts).iterdir()) == []
    assert accounts.audit.query(action=ARCHIVE_ACTION).total == 0


# -- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    services = prepare(Settings(data_dir=data_dir))
    try:
        services.users.create(PANEL, "admin", ADMIN_PASSWORD, "admin")
        services.users.create(PANEL, "victor", VIEWER_PASSWORD, "viewer")
    finally:
        services.close()
    return data_dir


def test_cli_archive_then_verify(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "archive", "--older-than-days", "1"]) == 0
    assert capsys.readouterr().out.startswith("nothing to archive: no event before ")

    assert main(["audit", "archive", "--before", "2999-01-01"]) == 0
    out = capsys.readouterr().out
    files = sorted((cli_dir / "backups").iterdir())
    assert len(files) == 1 and out == f"archived 2 events to {files[0]}\n"

    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == "audit log intact: 1 events\n"
    assert main(["audit", "verify", "--archive", str(files[0])]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "audit log intact: 1 events",
        f"{files[0]}: intact, events 1-2 (2)",
    ]
    assert main(["audit", "archive", "--older-than-days", "0"]) == 0
    assert capsys.readouterr().out.startswith("archived 1 events to ")


def test_cli_verify_names_the_bad_archive_row(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "archive", "--before", "2999-01-01T00:00:00Z"]) == 0
    capsys.readouterr()
    (path,) = (cli_dir / "backups").iterdir()
    rows = rows_of(path)
    rows[1]["target_label"] = "mallory"
    rewrite(path, rows)
    assert main(["audit", "verify", "--archive", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "audit log intact: 1 events\n"
    assert err.splitlines() == [f"nox-ui: error: archive {path} broken: event 2 does not match its hash"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--before", "yesterday"], 1, "nox-ui: error: --before: expected Unix seconds or ISO 8601"),
        (["--older-than-days", "-3"], 1, "nox-ui: error: --older-than-days must not be negative"),
        (["--older-than-days", "x"], 2, "invalid int value"),
        ([], 2, "one of the arguments --before --older-than-days is required"),
        (["--before", "2026-01-01", "--older-than-days", "3"], 2, "not allowed with argument"),
    ],
)
def test_cli_archive_bad_input_is_one_line_and_changes_nothing(
    cli_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["audit", "archive", *args]))
    out, err = capsys.readouterr()
    assert exited.value.code == code
    assert out == "" and err.count("\n") == 1 and message in err, err
    assert list((cli_dir / "backups").iterdir()) == []


# -- page -----------------------------------------------------------------------------------------


async def test_the_audit_page_says_what_is_archived(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    await app_user.open("/admin/audit")
    await app_user.should_not_see(marker="audit-archived")
    done = accounts.audit.archive(PANEL, datetime(2999, 1, 1, tzinfo=UTC), backups(accounts))
    assert done.path is not None
    await app_user.open("/admin/audit")
    await app_user.should_see(
        f"Events before 2999-01-01 00:00:00 UTC are archived (the latest {done.count} in"
    )
    await app_user.should_see(done.path.name)
    app_user.find(marker="audit-verify").click()
    await app_user.should_see("Chain intact", retries=50)


def test_archive_files_are_private_even_with_a_loose_umask(log: Services) -> None:
    previous = os.umask(0)
    try:
        done = log.audit.archive(PANEL, MAR, backups(log))
    finally:
        os.umask(previous)
    assert done.path is not None and stat.S_IMODE(done.path.stat().st_mode) == 0o600
