"""The SQLite defaults: WAL, foreign keys, busy timeout, and acknowledged writes that survive kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text

from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.server import prepare


def test_sqlite_pragmas(services: Services) -> None:
    with services.db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 15000
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_deleting_a_user_deletes_their_sessions(accounts: Services) -> None:
    from sqlmodel import select

    from nox_ui.models import LoginSession, User

    user = accounts.users.get_by_username("victor")
    assert user.id is not None
    accounts.auth.start_session(user.id)
    with accounts.db.session() as session:
        session.delete(session.get(User, user.id))
        session.commit()
        assert session.exec(select(LoginSession).where(LoginSession.user_id == user.id)).all() == []


def test_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from nox_ui.config import Settings
        from nox_ui.roles import PANEL
        from nox_ui.server import prepare
        services = prepare(Settings(data_dir={str(tmp_path)!r}))
        services.users.create(PANEL, "survivor", "a long enough password", "viewer")
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "acknowledged" in result.stdout
    services = prepare(Settings(data_dir=tmp_path))
    try:
        assert services.users.get_by_username("survivor").role == "viewer"
    finally:
        services.close()
