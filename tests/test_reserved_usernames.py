"""Issue #5, hole 10: no account may be named like a system actor ("system" is what the audit log shows
for the panel's own actions), whichever way the account is created: service, API, CLI or first-run setup."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import Settings
from nox_ui.errors import Invalid
from nox_ui.roles import PANEL
from nox_ui.server import prepare
from nox_ui.services.users import RESERVED_USERNAMES
from tests.conftest import ADMIN_PASSWORD, bearer

PASSWORD = "a long enough password"
SPELLINGS = ["system", "System", "SYSTEM", " system ", "root", "ROOT", "nox", "nox-ui", "Nox-UI",
             "anonymous", "unknown", "setup", "cli", "CLI"]  # fmt: skip


@pytest.mark.parametrize("name", SPELLINGS)
def test_the_service_refuses_a_reserved_name_in_any_case(accounts: Services, name: str) -> None:
    with pytest.raises(Invalid) as refused:
        accounts.users.create(PANEL, name, PASSWORD, "viewer")
    assert refused.value.message == (
        f"the username {name.strip()!r} is reserved: it would read as the system, not a person, "
        "in the audit log; choose another"
    )
    assert accounts.users.find(name) is None


def test_admin_and_names_that_merely_contain_a_reserved_word_are_fine(services: Services) -> None:
    assert "admin" not in RESERVED_USERNAMES
    for name in ("admin", "systemd-fan", "rooted", "nox2", "cli-ent"):
        assert services.users.create(PANEL, name, PASSWORD, "viewer").username == name


def test_first_run_setup_refuses_a_reserved_name(services: Services) -> None:
    token = services.setup.token()
    with pytest.raises(Invalid, match="'root' is reserved"):
        services.setup.create_admin(token, "root", PASSWORD)
    assert services.users.count() == 0
    assert services.setup.token() == token  # still open for a proper name
    assert services.setup.create_admin(token, "rosa", PASSWORD).username == "rosa"


def test_the_api_answers_422_and_creates_nothing(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "admin", ADMIN_PASSWORD)
    before = [u.username for u in accounts.users.list()]
    for name in ("system", "Root", "nox-ui", "anonymous"):
        response = api.post(
            "/api/v1/users", json={"username": name, "password": PASSWORD, "role": "viewer"}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert response.json() == {
            "detail": f"the username {name!r} is reserved: it would read as the system, not a person, "
            "in the audit log; choose another"
        }
    assert [u.username for u in accounts.users.list()] == before


def test_the_cli_refuses_with_one_line_and_a_non_zero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["users", "create", "System", "--role", "admin", "--password-stdin"]))
    assert exited.value.code not in (0, None)
    _, err = capsys.readouterr()
    assert err == (
        "nox-ui: error: the username 'System' is reserved: it would read as the system, not a person, "
        "in the audit log; choose another\n"
    )
    services = prepare(Settings(data_dir=data_dir))
    try:
        assert services.users.count() == 0
    finally:
        services.close()
