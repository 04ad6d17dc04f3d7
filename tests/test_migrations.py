"""pytest-alembic's checks: one head, upgrade from empty, up/down round trip, models match the migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401  (fixture)
from pytest_alembic.tests import (  # noqa: F401  (collected as tests here)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.engine import Engine

from nox_ui import migrate
from nox_ui.db import make_engine


@pytest.fixture
def alembic_config() -> Config:
    return migrate.alembic_config("sqlite://")


@pytest.fixture
def alembic_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    yield engine
    engine.dispose()


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cycle.db'}"
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision(url)
    migrate.downgrade(url, "base")
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision(url)


def test_head_constant_matches_the_scripts(tmp_path: Path) -> None:
    """serve skips Alembic when the database is at HEAD_REVISION, so the constant must be the real head."""
    url = f"sqlite:///{tmp_path / 'head.db'}"
    assert migrate.head_revision(url) == migrate.HEAD_REVISION
    migrate.upgrade_if_needed(url)
    assert migrate.current_revision(url) == migrate.HEAD_REVISION
    migrate.downgrade(url, "0001")
    migrate.upgrade_if_needed(url)
    assert migrate.current_revision(url) == migrate.HEAD_REVISION
