"""Logs go through loguru, to the console and a rotating file; they never carry passwords, hashes or one-time secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from loguru import logger

from nox_ui.app import Services
from nox_ui.errors import Unauthenticated
from nox_ui.logs import configure_logging, redact
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD


@pytest.fixture(autouse=True)
def restore_std_logging():
    """configure_logging rewires the standard library's loggers; put them back for the other tests."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    yield
    logger.remove()
    root.handlers[:], level = saved_root
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "nicegui", "alembic", "sqlalchemy"):
        std = logging.getLogger(name)
        std.handlers = []
        std.propagate = True
        std.setLevel(logging.NOTSET)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    configure_logging("DEBUG", json=False, log_dir=tmp_path)
    return tmp_path


def _read(log_dir: Path) -> str:
    logger.complete()
    return (log_dir / "nox-ui.log").read_text(encoding="utf-8")


def test_sign_in_logs_carry_no_secrets(log_dir: Path, accounts: Services) -> None:
    with pytest.raises(Unauthenticated):
        accounts.auth.check_password("admin", "my secret guess", ip="192.0.2.4")
    user = accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="192.0.2.4")
    assert user.id is not None
    token = accounts.auth.start_session(user.id, ip="192.0.2.4")
    text = _read(log_dir)
    assert "sign-in refused for 'admin' from 192.0.2.4: wrong password" in text
    assert "user 'admin' signed in from 192.0.2.4" in text
    for secret in ("my secret guess", ADMIN_PASSWORD, token, user.password_hash, "$argon2id$"):
        assert secret not in text


def test_settings_and_password_changes_log_no_secret_values(log_dir: Path, accounts: Services) -> None:
    accounts.settings.update(PANEL, {"smtp_password": "mail-S3CRET-value", "smtp_host": "mail.example.org"})
    accounts.users.set_password(PANEL, "olga", "fresh operator passphrase")
    text = _read(log_dir)
    assert "settings changed by system: smtp_host, smtp_password" in text
    for secret in ("mail-S3CRET-value", "fresh operator passphrase"):
        assert secret not in text


def test_standard_library_logs_are_routed_and_query_secrets_redacted(log_dir: Path) -> None:
    logging.getLogger("uvicorn.error").warning(
        "GET /setup?token=abc123SECRET&x=1 and /auth/complete?ticket=T0PSECRET"
    )
    text = _read(log_dir)
    assert "/setup?token=[redacted]&x=1" in text
    assert "abc123SECRET" not in text and "T0PSECRET" not in text


def test_json_lines(tmp_path: Path) -> None:
    configure_logging("INFO", json=True, log_dir=tmp_path)
    logger.info("hello {}", "json")
    logger.complete()
    line = (tmp_path / "nox-ui.log").read_text(encoding="utf-8").strip().splitlines()[-1]
    record = json.loads(line)
    assert record["record"]["message"] == "hello json"
    assert record["record"]["level"]["name"] == "INFO"


def test_redact_leaves_ordinary_text() -> None:
    assert redact("GET /login?next=/profile") == "GET /login?next=/profile"
