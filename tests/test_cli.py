"""`nox-ui` commands: each failure is one clear line and a non-zero exit; nothing changes on bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from nox_ui import migrate
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.server import prepare


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    return tmp_path / "data"


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def usernames(data_dir: Path) -> list[str]:
    services = prepare(Settings(data_dir=data_dir))
    try:
        return [u.username for u in services.users.list()]
    finally:
        services.close()


def test_create_list_disable_and_set_password(data_dir: Path, capsys, monkeypatch) -> None:
    code, out, _ = run(
        ["users", "create", "alice", "--role", "admin", "--password-stdin"],
        capsys,
        monkeypatch,
        "a very good password\n",
    )
    assert code == 0 and "created user 'alice' with role admin" in out
    code, out, _ = run(
        ["users", "create", "bob", "--role", "VIEWER", "--password-stdin"],
        capsys,
        monkeypatch,
        "bob's long password",
    )
    assert code == 0
    code, out, _ = run(["users", "list"], capsys, monkeypatch)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "STATUS", "LAST", "SIGN-IN"]
    assert lines[1].split()[:3] == ["alice", "admin", "active"]
    assert lines[2].split()[:3] == ["bob", "viewer", "active"]
    code, out, _ = run(["users", "disable", "bob"], capsys, monkeypatch)
    assert code == 0 and "disabled" in out
    code, out, _ = run(
        ["users", "set-password", "alice", "--password-stdin"], capsys, monkeypatch, "another good password\n"
    )
    assert code == 0
    services = prepare(Settings(data_dir=data_dir))
    assert services.auth.check_password("alice", "another good password").username == "alice"
    assert services.users.get_by_username("bob").disabled
    services.close()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["users", "create", "carol", "--role", "root", "--password-stdin"],
            "a long enough password",
            "unknown role 'root'",
        ),
        (["users", "create", "carol", "--role", "admin", "--password-stdin"], "short", "password too short"),
        (
            ["users", "create", "carol", "--role", "admin", "--password-stdin"],
            "",
            "no password on standard input",
        ),
        (["users", "create", "carol", "--role", "admin"], "", "pass it with --password-stdin"),
        (
            ["users", "create", "bad name", "--role", "admin", "--password-stdin"],
            "a long enough password",
            "invalid username",
        ),
        (
            ["users", "set-password", "nobody", "--password-stdin"],
            "a long enough password",
            "no user named 'nobody'",
        ),
        (["users", "disable", "nobody"], "", "no user named 'nobody'"),
        (["db", "upgrade", "nonsense"], "", "unknown revision 'nonsense'"),
    ],
)
def test_errors_are_one_line_and_change_nothing(
    data_dir: Path, capsys, monkeypatch, args, stdin, message
) -> None:
    code, _out, err = run(args, capsys, monkeypatch, stdin)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("nox-ui: error: "), err
    assert message in err
    assert usernames(data_dir) == []


def test_duplicate_user_is_refused(data_dir: Path, capsys, monkeypatch) -> None:
    assert (
        run(
            ["users", "create", "dave", "--role", "operator", "--password-stdin"],
            capsys,
            monkeypatch,
            "dave's long password",
        )[0]
        == 0
    )
    code, _, err = run(
        ["users", "create", "DAVE", "--role", "admin", "--password-stdin"],
        capsys,
        monkeypatch,
        "dave's long password",
    )
    assert code == 1
    assert err == "nox-ui: error: user 'DAVE' already exists\n"
    assert usernames(data_dir) == ["dave"]


def test_usage_errors_are_one_line(data_dir: Path, capsys, monkeypatch) -> None:
    for args in (["users", "create", "erin"], ["frobnicate"], ["users"], []):
        code, _, err = run(args, capsys, monkeypatch)
        assert code == 2, args
        assert err.count("\n") == 1 and "error:" in err, err


def test_db_commands(data_dir: Path, capsys, monkeypatch) -> None:
    assert run(["db", "current"], capsys, monkeypatch)[1].startswith("base")
    code, out, _ = run(["db", "upgrade"], capsys, monkeypatch)
    head = migrate.head_revision("sqlite://")
    assert code == 0 and f"database at revision {head}" in out
    assert run(["db", "current"], capsys, monkeypatch)[1].strip() == f"{head} (head)"
    history = run(["db", "history"], capsys, monkeypatch)[1]
    assert "0001" in history and f"{head} (head) (current)" in history
    code, out, _ = run(["db", "downgrade", "0001"], capsys, monkeypatch)
    assert code == 0 and "database at revision 0001" in out
    code, out, _ = run(["db", "downgrade", "base"], capsys, monkeypatch)
    assert code == 0 and "base" in out


def test_console_script_and_module_entry(data_dir: Path) -> None:
    module = subprocess.run(
        [sys.executable, "-m", "nox_ui", "--version"], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and module.stdout.startswith("nox-ui ")
    script = Path(sys.executable).parent / "nox-ui"
    bad = subprocess.run(
        [str(script), "users", "create", "x", "--role", "god", "--password-stdin"],
        input="a long enough password",
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip() == "nox-ui: error: unknown role 'god' (choose one of: viewer, operator, admin)"
