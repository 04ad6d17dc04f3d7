"""Alembic, driven from code: `serve` upgrades on start; `nox-ui db ...` exposes the rest.

Alembic is imported only when a migration runs: a database already at HEAD_REVISION is recognised
with one plain query, which keeps ~11 MiB of Alembic out of a running server's memory."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import inspect, text

from nox_ui.db import make_engine

if TYPE_CHECKING:
    from alembic.config import Config

# The newest script in nox_ui/migrations/versions; tests/test_migrations.py keeps the two in step.
HEAD_REVISION = "0007"


def alembic_config(url: str, stdout: TextIO | None = None) -> Config:
    from alembic.config import Config

    config = Config(stdout=stdout or sys.stdout)
    config.set_main_option("script_location", "nox_ui:migrations")
    # '%' would be read as interpolation by configparser
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def upgrade_if_needed(url: str) -> None:
    """Upgrade to head unless the database is there already (the common case at start-up)."""
    if current_revision(url) != HEAD_REVISION:
        upgrade(url)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def known_revisions(url: str) -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    return {rev.revision for rev in script.walk_revisions()}


def history(url: str) -> str:
    from alembic import command

    buffer = io.StringIO()
    command.history(alembic_config(url, stdout=buffer), indicate_current=True)
    return buffer.getvalue().rstrip()
