from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from nox_ui.config import DATA_SUBDIRS, Settings


def test_defaults_match_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOX_DATA_DIR", "NOX_HOST", "NOX_PORT", "NOX_DATABASE_URL", "NOX_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.data_dir == Path("./data")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.sample_interval == 1.0
    assert settings.log_level == "INFO" and settings.log_json is False
    assert settings.metrics_public is False
    assert settings.resolved_database_url.startswith(
        "sqlite:///"
    ) and settings.resolved_database_url.endswith("nox.db")
    assert settings.resolved_base_url == "http://127.0.0.1:8080"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NOX_PORT", "9090")
    monkeypatch.setenv("NOX_HOST", "0.0.0.0")
    monkeypatch.setenv("NOX_LOG_JSON", "true")
    monkeypatch.setenv("NOX_DATABASE_URL", "postgresql+psycopg://nox@localhost/nox")
    settings = Settings()
    assert settings.data_dir == tmp_path and settings.port == 9090 and settings.log_json is True
    assert settings.resolved_database_url == "postgresql+psycopg://nox@localhost/nox"
    assert settings.resolved_base_url == "http://127.0.0.1:9090"  # a wildcard bind is not a URL


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOX_PORT", "99999")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("NOX_PORT")
    monkeypatch.setenv("NOX_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError):
        Settings()


def test_data_dir_and_secret_key_are_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    settings.prepare_data_dir()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for name in DATA_SUBDIRS:
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o700
    key = settings.load_secret_key()
    key_file = tmp_path / "state" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key) >= 48
    assert Settings(data_dir=tmp_path / "state").load_secret_key() == key  # generated once, then reused


def test_database_file_is_private(tmp_path: Path) -> None:
    from nox_ui.server import prepare

    services = prepare(Settings(data_dir=tmp_path / "state"))
    services.users.count()
    services.close()
    assert stat.S_IMODE((tmp_path / "state" / "nox.db").stat().st_mode) == 0o600


def test_explicit_secret_key_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="from-env")
    assert settings.load_secret_key() == "from-env"
    assert not (tmp_path / "secret.key").exists()
