"""The audit log: every recorded event, the hash chain, tampering found by service, API and CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.errors import Forbidden, Unauthenticated
from nox_ui.models import AuditEvent, User
from nox_ui.roles import PANEL, Principal, Role
from nox_ui.server import prepare
from nox_ui.services.audit import GENESIS, REDACTED, chain_hash
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer

ADMIN = Principal(user_id=1, username="admin", role=Role.ADMIN)
VIEWER = Principal(user_id=3, username="victor", role=Role.VIEWER)


def events(services: Services, **filters: object) -> list[AuditEvent]:
    """Oldest first."""
    return list(reversed(services.audit.query(limit=1000, **filters).events))  # type: ignore[arg-type]


def last(services: Services, action: str) -> AuditEvent:
    found = events(services, action=action)
    assert found, f"no {action} event"
    return found[-1]


def tamper(services: Services, event_id: int, details: str = '{"forged": true}') -> None:
    with services.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET details = :d WHERE id = :id"), {"d": details, "id": event_id}
        )


# -- events ---------------------------------------------------------------------------------------


def test_user_creation_by_the_local_operator_is_a_system_event(accounts: Services) -> None:
    created = events(accounts, action="user.create")
    assert [e.target_label for e in created] == ["admin", "olga", "victor"]
    first = created[0]
    assert (first.actor_id, first.actor_name, first.actor_role, first.outcome) == (
        None,
        "system",
        "system",
        "success",
    )
    assert first.target_type == "user" and first.target_id == "1"
    assert json.loads(first.details)["role"] == "admin"
    assert first.prev_hash == GENESIS


def test_user_created_by_an_admin_names_the_admin(accounts: Services) -> None:
    accounts.users.create(ADMIN, "nina", "a long enough password", "viewer", ip="192.0.2.8")
    event = last(accounts, "user.create")
    assert (event.actor_name, event.actor_role, event.source_ip, event.target_label) == (
        "admin",
        "admin",
        "192.0.2.8",
        "nina",
    )


def test_sign_in_success_and_failure(accounts: Services) -> None:
    accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="192.0.2.1")
    ok = last(accounts, "auth.login.success")
    assert (ok.actor_name, ok.actor_role, ok.outcome, ok.source_ip) == (
        "admin",
        "admin",
        "success",
        "192.0.2.1",
    )

    with pytest.raises(Unauthenticated):
        accounts.auth.check_password("admin", "a wrong guess 123", ip="192.0.2.1")
    with pytest.raises(Unauthenticated):
        accounts.auth.check_password("nobody", "whatever it was", ip="192.0.2.1")
    failures = events(accounts, action="auth.login.failure")
    assert [(e.target_label, e.outcome, e.actor_name) for e in failures] == [
        ("admin", "failure", "system"),
        ("nobody", "failure", "system"),
    ]
    assert json.loads(failures[0].details) == {"reason": "wrong password"}
    dump = "".join(accounts.audit.export("jsonl"))
    assert "a wrong guess 123" not in dump and "whatever it was" not in dump


def test_sign_out_and_token_create_and_revoke(accounts: Services) -> None:
    user = accounts.auth.check_password("victor", VIEWER_PASSWORD)
    cookie = accounts.auth.start_session(user.id or 0, ip="192.0.2.2")
    accounts.auth.end_session(cookie, ip="192.0.2.2")
    out = last(accounts, "auth.logout")
    assert (out.actor_name, out.outcome, out.source_ip, out.target_type) == (
        "victor",
        "success",
        "192.0.2.2",
        "session",
    )

    issued = accounts.auth.issue_token(user, name="script", scopes=frozenset({"read"}), ip="192.0.2.3")
    created = last(accounts, "auth.token.create")
    assert (created.actor_name, created.target_id, created.target_label) == (
        "victor",
        str(issued.record.id),
        "script",
    )
    assert issued.token not in created.details
    assert json.loads(created.details)["scopes"] == ["read"]

    accounts.auth.revoke_token(ADMIN, issued.record.id or 0)
    revoked = last(accounts, "auth.token.revoke")
    assert (revoked.actor_name, revoked.target_id, revoked.outcome) == (
        "admin",
        str(issued.record.id),
        "success",
    )


def test_password_change_and_disable_record_the_sessions_they_end(accounts: Services) -> None:
    victor = accounts.auth.check_password("victor", VIEWER_PASSWORD)
    accounts.auth.start_session(victor.id or 0)
    accounts.users.set_password(ADMIN, "victor", "another good password")
    changed = last(accounts, "user.password")
    assert (changed.actor_name, changed.target_label, changed.outcome) == ("admin", "victor", "success")
    assert "another good password" not in changed.details
    ended = last(accounts, "auth.session.end")
    assert json.loads(ended.details) == {"reason": "password changed", "sessions": 1, "api_keys_revoked": 0}

    accounts.auth.start_session(victor.id or 0)
    accounts.users.set_disabled(PANEL, "victor", True)
    disabled = last(accounts, "user.disable")
    assert (disabled.actor_name, disabled.target_label) == ("system", "victor")
    assert json.loads(last(accounts, "auth.session.end").details)["reason"] == "account disabled"
    accounts.users.set_disabled(ADMIN, "victor", False)
    assert json.loads(last(accounts, "user.update").details) == {"disabled": False}


def test_a_refused_service_action_is_audited_as_denied(accounts: Services) -> None:
    with pytest.raises(Forbidden):
        accounts.users.set_disabled(VIEWER, "admin", True)
    denied = last(accounts, "access.denied")
    assert (denied.actor_name, denied.outcome, denied.target_label) == ("victor", "denied", "admin")
    assert accounts.users.get_by_username("admin").disabled is False


def test_process_signals_are_audited(services: Services) -> None:
    # A session of its own: the panel (here pytest) refuses to signal its own process group.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        operator = Principal(user_id=2, username="olga", role=Role.OPERATOR)
        with pytest.raises(Forbidden):
            services.processes.signal(VIEWER, child.pid, "TERM")
        services.processes.signal(operator, child.pid, "TERM")
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    signals = events(services, action="process.signal")
    assert [(e.actor_name, e.outcome, e.target_id) for e in signals] == [
        ("victor", "denied", str(child.pid)),
        ("olga", "success", str(child.pid)),
    ]
    assert json.loads(signals[1].details) == {"signal": "TERM"}


# -- the log itself ---------------------------------------------------------------------------------


def test_secrets_are_redacted_at_any_depth(services: Services) -> None:
    event = services.audit.record_now(
        actor=None,
        action="test.secret",
        outcome="success",
        details={
            "smtp_password": "hunter2",
            "nested": {"api_token": "nox_x", "Secret": 1},
            "items": [{"hash": "h"}],
            "kept": "ok",
        },
    )
    assert json.loads(event.details) == {
        "smtp_password": REDACTED,
        "nested": {"api_token": REDACTED, "Secret": REDACTED},
        "items": [{"hash": REDACTED}],
        "kept": "ok",
    }


def test_an_event_rolled_back_with_its_change_does_not_exist(accounts: Services) -> None:
    before = accounts.audit.query().total
    with accounts.db.session() as session:
        user = session.get(User, 3)
        assert user is not None
        user.display_name = "never saved"
        accounts.audit.record(
            session, actor=ADMIN, action="user.update", outcome="success", target_label="victor"
        )
        session.rollback()
    assert accounts.audit.query().total == before
    assert accounts.users.get_by_username("victor").display_name == ""
    assert accounts.audit.verify().ok


def test_the_chain_links_every_event_and_verifies(accounts: Services) -> None:
    accounts.auth.check_password("admin", ADMIN_PASSWORD)
    stored = events(accounts)
    assert stored[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert all(chain_hash(e) == e.hash for e in stored)
    result = accounts.audit.verify()
    assert (result.ok, result.checked, result.first_bad) == (True, len(stored), None)


def test_concurrent_writers_keep_one_chain(services: Services) -> None:
    def write(n: int) -> None:
        for i in range(10):
            services.audit.record_now(
                actor=None, action="test.concurrent", outcome="success", details={"n": n, "i": i}
            )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = services.audit.verify()
    assert result.ok and result.checked == 40


def test_editing_one_row_by_hand_breaks_the_chain_at_that_row(accounts: Services) -> None:
    target = events(accounts)[1]
    tamper(accounts, target.id or 0)
    result = accounts.audit.verify()
    assert (result.ok, result.first_bad, result.checked) == (False, target.id, 2)


def test_deleting_a_row_breaks_the_chain_at_the_next(accounts: Services) -> None:
    stored = events(accounts)
    with accounts.db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": stored[0].id})
    assert accounts.audit.verify().first_bad == stored[1].id


def test_query_filters(accounts: Services) -> None:
    accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="192.0.2.1")
    with pytest.raises(Unauthenticated):
        accounts.auth.check_password("olga", "not her password", ip="192.0.2.1")
    assert {e.action for e in events(accounts, action="auth.login")} == {
        "auth.login.success",
        "auth.login.failure",
    }
    assert [e.action for e in events(accounts, actor="ADMIN")] == ["auth.login.success"]
    assert [e.target_label for e in events(accounts, outcome="failure")] == ["olga"]
    assert [e.target_label for e in events(accounts, q="VICTOR")] == ["victor"]
    assert accounts.audit.query(since=4102444800.0).total == 0  # 2100
    page = accounts.audit.query(limit=2, offset=1)
    assert page.total == 5 and len(page.events) == 2
    with pytest.raises(Forbidden):
        accounts.audit.query(requester=VIEWER)
    with pytest.raises(Forbidden):
        accounts.audit.verify(requester=VIEWER)
    with pytest.raises(Forbidden):
        list(accounts.audit.export("csv", requester=VIEWER))


def test_csv_and_jsonl_exports_contain_every_event(accounts: Services) -> None:
    stored = events(accounts)
    rows = list(csv.DictReader(io.StringIO("".join(accounts.audit.export("csv")))))
    assert [int(r["id"]) for r in rows] == [e.id for e in stored]
    assert rows[0]["action"] == "user.create" and rows[0]["hash"] == stored[0].hash
    lines = [json.loads(line) for line in "".join(accounts.audit.export("jsonl")).splitlines()]
    assert [line["id"] for line in lines] == [e.id for e in stored]
    assert lines[-1]["target_label"] == "victor"


# -- API ------------------------------------------------------------------------------------------


def test_api_lists_and_verifies_for_an_admin(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "admin", ADMIN_PASSWORD)
    listed = api.get(
        "/api/v1/audit", params={"action": "auth", "since": "2000-01-01T00:00:00Z"}, headers=headers
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [e["action"] for e in body["events"]] == ["auth.token.create", "auth.login.success"]
    assert body["events"][1]["source_ip"] == "203.0.113.9"
    assert body["total"] == 2
    assert api.get("/api/v1/audit", params={"since": "yesterday"}, headers=headers).status_code == 422
    assert api.get("/api/v1/audit/verify", headers=headers).json() == {
        "ok": True,
        "checked": 5,
        "first_bad": None,
        "reason": "",
    }

    tamper(accounts, 2)
    assert api.get("/api/v1/audit/verify", headers=headers).json() == {
        "ok": False,
        "checked": 2,
        "first_bad": 2,
        "reason": "event 2 does not match its hash (1 events before it verify)",
    }


def test_api_refuses_a_viewer_and_audits_the_refusal(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    assert api.get("/api/v1/audit", headers=headers).status_code == 403
    assert api.get("/api/v1/audit/verify", headers=headers).status_code == 403
    denied = events(accounts, action="access.denied")
    assert [(e.actor_name, e.outcome, e.target_type, e.target_id) for e in denied] == [
        ("victor", "denied", "api", "GET /api/v1/audit"),
        ("victor", "denied", "api", "GET /api/v1/audit/verify"),
    ]
    assert denied[0].source_ip == "203.0.113.9"


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


def test_cli_verify_and_export(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == "audit log intact: 2 events\n"

    assert main(["audit", "export", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["target_label"] for line in lines] == ["admin", "victor"]
    assert main(["audit", "export", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["action"] for row in rows] == ["user.create", "user.create"]


def test_cli_verify_names_the_first_bad_row(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = prepare(Settings(data_dir=cli_dir))
    try:
        tamper(services, 2)
    finally:
        services.close()
    assert main(["audit", "verify"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "nox-ui: error: audit log broken: event 2 does not match its hash (1 events before it verify)"
    ]
