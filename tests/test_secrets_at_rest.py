"""Secrets at rest: the SMTP password (and, in tests/test_notify.py, notifier secrets) never sit in the
database file as plain text; `nox-ui secrets rotate` moves them to a new key and the panel reads
them afterwards."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nox_ui.app import Services
from nox_ui.cli import main
from nox_ui.config import NEXT_SECRET_KEY_FILE, SECRET_KEY_FILE, Settings
from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.roles import PANEL
from nox_ui.server import prepare

SMTP_PASSWORD = "smtp-Pa55word-that-must-not-leak"
WEBHOOK_SECRET = "webhook-signing-secret-4711"


def raw_bytes(data_dir: Path) -> bytes:
    """Everything SQLite has on disk for the panel: the database file and its write-ahead log."""
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob("nox.db*")))


def stored_value(data_dir: Path, key: str) -> str:
    with sqlite3.connect(data_dir / "nox.db") as db:
        row = db.execute("SELECT value FROM runtime_settings WHERE key = ?", (key,)).fetchone()
    return str(json.loads(row[0]))


def file_settings(tmp_path: Path) -> Settings:
    """A panel whose key lives in DATA_DIR/secret.key (the default), not in NOX_SECRET_KEY."""
    return Settings(data_dir=tmp_path / "data", port=1)  # port 1: nothing listens there


def test_the_smtp_password_is_encrypted_in_the_database_file(services: Services) -> None:
    services.settings.update(PANEL, {"smtp_password": SMTP_PASSWORD})
    assert services.settings.current.smtp_password == SMTP_PASSWORD
    assert SMTP_PASSWORD.encode() not in raw_bytes(services.config.data_dir)
    assert stored_value(services.config.data_dir, "smtp_password").startswith("enc:v1:")
    # After a restart the panel reads it back.
    again = prepare(services.config)
    try:
        assert again.settings.current.smtp_password == SMTP_PASSWORD
    finally:
        again.close()


def test_a_database_copied_to_another_panel_reveals_no_secret(services: Services) -> None:
    services.settings.update(PANEL, {"smtp_password": SMTP_PASSWORD})
    stored = stored_value(services.config.data_dir, "smtp_password")
    with pytest.raises(SecretUnreadable):
        SecretBox("another installation's key").decrypt(stored)


def test_rotation_moves_every_secret_to_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOX_SECRET_KEY", raising=False)
    settings = file_settings(tmp_path)
    services = prepare(settings)
    old_key = services.secrets.secret_key
    services.settings.update(PANEL, {"smtp_password": SMTP_PASSWORD})
    services.notifiers.create(
        PANEL, "hooks", "webhook", {"url": "https://hooks.example.org/nox", "secret": WEBHOOK_SECRET}
    )
    services.close()

    monkeypatch.setenv("NOX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NOX_PORT", "1")
    assert main(["secrets", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "1 setting(s) and 1 notifier(s) re-encrypted" in out

    new_key = (settings.data_dir / SECRET_KEY_FILE).read_text().strip()
    assert new_key != old_key
    assert not (settings.data_dir / NEXT_SECRET_KEY_FILE).exists()
    stored = stored_value(settings.data_dir, "smtp_password")
    with pytest.raises(SecretUnreadable):
        SecretBox(old_key).decrypt(stored)  # the old key opens nothing any more
    assert SecretBox(new_key).decrypt(stored) == SMTP_PASSWORD
    raw = raw_bytes(settings.data_dir)
    assert SMTP_PASSWORD.encode() not in raw
    assert WEBHOOK_SECRET.encode() not in raw

    restarted = prepare(settings)
    try:
        assert restarted.settings.current.smtp_password == SMTP_PASSWORD
        assert restarted.audit.verify().ok
        assert [e.action for e in restarted.audit.query(action="secrets.rotate").events] == ["secrets.rotate"]
    finally:
        restarted.close()
    assert main(["audit", "verify"]) == 0


def test_a_rotation_stopped_half_way_leaves_every_secret_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new key is on disk (secret.key.next) before any value is re-encrypted under it, and the
    panel reads values under either key until secret.key is replaced."""
    monkeypatch.delenv("NOX_SECRET_KEY", raising=False)
    settings = file_settings(tmp_path)
    services = prepare(settings)
    services.settings.update(PANEL, {"smtp_password": SMTP_PASSWORD})
    next_key = "the key a rotation was moving to"
    (settings.data_dir / NEXT_SECRET_KEY_FILE).write_text(next_key + "\n")
    box = SecretBox(next_key, [services.secrets.secret_key])
    with services.db.session() as session:
        services.settings.reencrypt_secrets(session, box)
        session.commit()
    services.close()

    restarted = prepare(settings)
    try:
        assert restarted.settings.current.smtp_password == SMTP_PASSWORD
    finally:
        restarted.close()


def test_rotate_refuses_clearly_when_the_key_is_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NOX_SECRET_KEY", "the new key")
    monkeypatch.setenv("NOX_PORT", "1")
    assert main(["secrets", "rotate"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "nox-ui: error: the key comes from NOX_SECRET_KEY: set the new key there and pass the old one "
        "with --old-key-file FILE"
    )


def test_rotate_from_an_old_key_file_to_the_key_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    old = prepare(Settings(data_dir=data_dir, secret_key="the old key"))
    old.settings.update(PANEL, {"smtp_password": SMTP_PASSWORD})
    old.close()
    old_key_file = tmp_path / "old.key"
    old_key_file.write_text("the old key\n")
    monkeypatch.setenv("NOX_DATA_DIR", str(data_dir))
    monkeypatch.setenv("NOX_SECRET_KEY", "the new key")
    monkeypatch.setenv("NOX_PORT", "1")
    assert main(["secrets", "rotate", "--old-key-file", str(old_key_file)]) == 0
    assert SecretBox("the new key").decrypt(stored_value(data_dir, "smtp_password")) == SMTP_PASSWORD
    new = prepare(Settings(data_dir=data_dir, secret_key="the new key"))
    try:
        assert new.settings.current.smtp_password == SMTP_PASSWORD
        assert new.audit.verify().ok
    finally:
        new.close()
