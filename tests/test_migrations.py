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
from sqlalchemy import delete, text
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from nox_ui import migrate
from nox_ui.db import Database, make_engine
from nox_ui.models import Alert, AlertRule, AlertRuleNotifier, Delivery, Notifier, Silence


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


def test_rule_notifiers_become_links_on_a_populated_database(tmp_path: Path) -> None:
    """0006 on a real file with rows written at 0005: each rule's JSON list of notifier ids becomes
    join rows (ids of deleted notifiers, repeats and unreadable lists dropped), alerts and their
    deliveries survive the table copies, labels and matchers read back as objects, and deleting either
    side of a link deletes the link."""
    url = f"sqlite:///{tmp_path / 'populated.db'}"
    migrate.upgrade(url, "0005")
    ts = "2026-11-28 12:00:00.000000"
    engine = make_engine(url)
    with engine.begin() as conn:
        for notifier_id, name in ((1, "mail"), (2, "hook")):
            conn.execute(
                text(
                    "INSERT INTO notifiers (id, name, kind, config, created_at, updated_at) "
                    "VALUES (:id, :name, 'webhook', '{}', :ts, :ts)"
                ),
                {"id": notifier_id, "name": name, "ts": ts},
            )
        for rule_id, notifiers in ((1, "[1, 2, 99]"), (2, "[2, 2]"), (3, "not json"), (4, "[]")):
            conn.execute(
                text(
                    "INSERT INTO alert_rules (id, name, kind, metric, op, threshold, for_seconds, severity, "
                    "notifiers, enabled, description, created_at, updated_at) VALUES (:id, :name, "
                    "'threshold', 'cpu.percent', '>', 90, 0, 'warning', :notifiers, 1, '', :ts, :ts)"
                ),
                {"id": rule_id, "name": f"rule {rule_id}", "notifiers": notifiers, "ts": ts},
            )
        conn.execute(
            text(
                "INSERT INTO alerts (id, rule_id, series, labels, state, severity, value, threshold, "
                "pending_since, fired_at, ack_comment) VALUES (1, 1, 'disk.used_percent{mount=\"/\"}', "
                "'{\"mount\": \"/\"}', 'firing', 'warning', 95, 90, :ts, :ts, '')"
            ),
            {"ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO deliveries (id, alert_id, notifier_id, event, status, attempts, error, "
                "created_at) VALUES (1, 1, 1, 'firing', 'sent', 1, '', :ts)"
            ),
            {"ts": ts},
        )
        for silence_id, matchers in ((1, '{"alertname": "rule 1"}'), (2, "garbage")):
            conn.execute(
                text(
                    "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, created_at) "
                    "VALUES (:id, :matchers, :ts, :ts, 'why', 'admin', :ts)"
                ),
                {"id": silence_id, "matchers": matchers, "ts": ts},
            )
    engine.dispose()

    migrate.upgrade(url)

    db = Database(url)
    try:
        with db.session() as session:
            links = {
                (link.rule_id, link.notifier_id) for link in session.exec(select(AlertRuleNotifier)).all()
            }
            assert links == {(1, 1), (1, 2), (2, 2)}
            alert = session.get(Alert, 1)
            assert alert is not None and alert.labels == {"mount": "/"}  # the copy kept the episode
            assert session.get(Delivery, 1) is not None  # and its delivery log (no cascade on the copy)
            silences = {s.id: s.matchers for s in session.exec(select(Silence)).all()}
            assert silences == {1: {"alertname": "rule 1"}, 2: {}}
            assert [rule.name for rule in session.exec(select(AlertRule)).all()] == [
                f"rule {i}" for i in (1, 2, 3, 4)
            ]
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on after migrating
        with db.session() as session:
            session.execute(delete(Notifier).where(col(Notifier.id) == 2))
            session.execute(delete(AlertRule).where(col(AlertRule.id) == 1))
            session.commit()
            assert session.exec(select(AlertRuleNotifier)).all() == []
            assert session.get(Alert, 1) is None and session.get(Delivery, 1) is None
    finally:
        db.dispose()


def test_rule_notifier_links_go_back_to_lists_on_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    ts = "2026-11-28 12:00:00.000000"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notifiers (id, name, kind, config, created_at, updated_at) "
                "VALUES (3, 'a', 'webhook', '{}', :ts, :ts), (5, 'b', 'webhook', '{}', :ts, :ts)"
            ),
            {"ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO alert_rules (id, name, kind, metric, op, threshold, for_seconds, severity, "
                "enabled, description, created_at, updated_at) VALUES (7, 'r', 'threshold', 'cpu.percent', "
                "'>', 1, 0, 'info', 1, '', :ts, :ts)"
            ),
            {"ts": ts},
        )
        conn.execute(text("INSERT INTO alert_rule_notifiers (rule_id, notifier_id) VALUES (7, 5), (7, 3)"))
    engine.dispose()
    migrate.downgrade(url, "0005")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT notifiers FROM alert_rules WHERE id = 7")).scalar() == "[3, 5]"
    finally:
        engine.dispose()
