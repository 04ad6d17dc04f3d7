"""Alert rules as a service: validation with readable 422s, unique names, roles, the audit trail with
old → new values, and selectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from nox_ui.alerts.rules import RuleIn, Selector
from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden, Invalid, NotFound
from nox_ui.models import AuditEvent, Notifier
from nox_ui.roles import PANEL, Principal
from nox_ui.services.audit import actor_of

BASE = {"name": "root disk", "metric": 'disk.used_percent{mount="/"}', "op": ">", "threshold": 90}


@pytest.fixture
def olga(accounts: Services) -> Principal:
    return actor_of(accounts.users.get_by_username("olga"))


@pytest.fixture
def victor(accounts: Services) -> Principal:
    return actor_of(accounts.users.get_by_username("victor"))


def events(services: Services, action: str) -> list[AuditEvent]:
    with services.db.session() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def notifier(services: Services, name: str = "pager") -> int:
    with services.db.session() as session:
        row = Notifier(name=name, kind="webhook", config="{}")
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def test_selectors_match_every_series_or_exactly_their_labels() -> None:
    every = Selector.parse("disk.used_percent")
    root = Selector.parse(' disk.used_percent{ mount = "/" } ')
    assert every.matches({"mount": "/data"}) and every.matches({})
    assert root.matches({"mount": "/"}) and not root.matches({"mount": "/data"}) and not root.matches({})
    assert root.text == 'disk.used_percent{mount="/"}'
    two = Selector.parse('sensor.temperature_celsius{sensor="Core 0",chip="coretemp"}')
    assert two.text == 'sensor.temperature_celsius{chip="coretemp",sensor="Core 0"}'
    assert two.matches({"chip": "coretemp", "sensor": "Core 0", "extra": "x"})
    assert not two.matches({"chip": "coretemp"})


def test_an_operator_creates_a_rule_and_it_is_audited(accounts: Services, olga: Principal) -> None:
    pager = notifier(accounts)
    row = accounts.alerts.rules.create(
        olga,
        {
            **BASE,
            "metric": 'disk.used_percent{ mount="/" }',
            "for_seconds": 300,
            "clear_threshold": 85,
            "severity": "critical",
            "notifiers": [pager],
            "repeat_seconds": 3600,
            "description": "runbook: https://wiki/disk",
        },
        ip="198.51.100.7",
    )
    rule = row.definition()
    assert rule.metric == 'disk.used_percent{mount="/"}'  # stored in canonical form
    assert (rule.kind, rule.for_seconds, rule.clear_threshold, rule.severity) == (
        "threshold",
        300,
        85,
        "critical",
    )
    assert rule.notifiers == (pager,) and rule.repeat_seconds == 3600 and rule.enabled
    [event] = events(accounts, "alert.rule.create")
    assert event.actor_name == "olga" and event.target_id == str(row.id) and event.source_ip == "198.51.100.7"
    assert json.loads(event.details)["threshold"] == 90
    assert [r.name for r in accounts.alerts.rules.list()] == ["root disk"]
    assert [r.name for r in accounts.alerts.engine.rules()] == ["root disk"]  # compiled at once


def test_names_are_unique(services: Services) -> None:
    services.alerts.rules.create(PANEL, BASE)
    with pytest.raises(Conflict, match="already exists"):
        services.alerts.rules.create(PANEL, {**BASE, "threshold": 95})
    other = services.alerts.rules.create(PANEL, {**BASE, "name": "other"})
    assert other.id is not None
    with pytest.raises(Conflict):
        services.alerts.rules.update(PANEL, other.id, {"name": "root disk"})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"metric": "disk.nope"}, "unknown metric 'disk.nope'"),
        ({"metric": 'disk.used_percent{mnt="/"}'}, "unknown label 'mnt'"),
        ({"metric": "cpu.percent{"}, "invalid metric"),
        ({"op": "=>"}, "op"),
        ({"for_seconds": -1}, "for_seconds"),
        ({"for_seconds": 8 * 86400}, "for_seconds"),
        ({"threshold": float("nan")}, "threshold"),
        ({"clear_threshold": 95}, "clear_threshold must be at most the threshold"),
        (
            {"op": "<", "threshold": 10, "clear_threshold": 5},
            "clear_threshold must be at least the threshold",
        ),
        ({"op": "==", "clear_threshold": 90}, "needs >, >=, < or <="),
        ({"severity": "fatal"}, "severity"),
        ({"notifiers": [999]}, "no notifier with id 999"),
        ({"notifiers": [1, 1]}, "twice"),
        ({"repeat_seconds": 30}, "repeat_seconds"),
        ({"kind": "nodata", "for_seconds": 5}, "at least 10"),
        ({"kind": "sometimes"}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "two\nlines"}, "one line"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(
    services: Services, change: dict[str, Any], reason: str
) -> None:
    notifier(services)
    with pytest.raises(Invalid, match=reason.replace("(", r"\(").replace("[", r"\[")):
        services.alerts.rules.create(PANEL, {**BASE, **change})
    assert services.alerts.rules.list() == []


def test_a_nodata_rule_ignores_op_and_threshold(services: Services) -> None:
    row = services.alerts.rules.create(
        PANEL, {"name": "gone", "kind": "nodata", "metric": "cpu.percent", "for_seconds": 60}
    )
    assert row.kind == "nodata" and row.for_seconds == 60


def test_an_update_is_validated_as_a_whole_and_audited_old_to_new(services: Services) -> None:
    row = services.alerts.rules.create(PANEL, {**BASE, "clear_threshold": 80})
    assert row.id is not None
    with pytest.raises(Invalid, match="clear_threshold must be at most"):
        services.alerts.rules.update(PANEL, row.id, {"threshold": 70})  # 80 would now be on the wrong side
    assert services.alerts.rules.get(row.id).threshold == 90
    updated = services.alerts.rules.update(
        PANEL, row.id, {"threshold": 70, "clear_threshold": None, "severity": "info"}
    )
    assert (updated.threshold, updated.clear_threshold, updated.severity) == (70, None, "info")
    [event] = events(services, "alert.rule.update")
    assert json.loads(event.details) == {
        "threshold": {"old": 90.0, "new": 70.0},
        "clear_threshold": {"old": 80.0, "new": None},
        "severity": {"old": "warning", "new": "info"},
    }
    services.alerts.rules.update(PANEL, row.id, {"severity": "info"})  # nothing changes: nothing recorded
    assert len(events(services, "alert.rule.update")) == 1
    with pytest.raises(NotFound):
        services.alerts.rules.update(PANEL, 999, {"threshold": 1})


def test_delete_is_audited(services: Services) -> None:
    row = services.alerts.rules.create(PANEL, BASE)
    assert row.id is not None
    services.alerts.rules.delete(PANEL, row.id)
    assert services.alerts.rules.list() == [] and services.alerts.engine.rules() == []
    [event] = events(services, "alert.rule.delete")
    assert event.target_label == "root disk" and json.loads(event.details)["metric"] == BASE["metric"]
    with pytest.raises(NotFound):
        services.alerts.rules.delete(PANEL, row.id)


def test_a_viewer_cannot_change_rules_and_the_refusal_is_audited(
    accounts: Services, olga: Principal, victor: Principal
) -> None:
    row = accounts.alerts.rules.create(olga, BASE)
    assert row.id is not None
    with pytest.raises(Forbidden):
        accounts.alerts.rules.create(victor, {**BASE, "name": "mine"})
    with pytest.raises(Forbidden):
        accounts.alerts.rules.update(victor, row.id, {"threshold": 1})
    with pytest.raises(Forbidden):
        accounts.alerts.rules.delete(victor, row.id)
    with pytest.raises(Forbidden):
        accounts.alerts.preview(victor, BASE)
    denied = events(accounts, "access.denied")
    assert [json.loads(e.details)["attempted"] for e in denied] == [
        "alert.rule.create",
        "alert.rule.update",
        "alert.rule.delete",
        "alert.rule.preview",
    ]
    assert [r.threshold for r in accounts.alerts.rules.list()] == [90]


def test_a_disabled_rule_is_stored_but_not_compiled(services: Services) -> None:
    services.alerts.rules.create(PANEL, {**BASE, "enabled": False})
    assert len(services.alerts.rules.list()) == 1 and services.alerts.engine.rules() == []


def test_the_request_model_is_the_api_body() -> None:
    assert set(RuleIn.model_fields) == {
        "name",
        "metric",
        "kind",
        "op",
        "threshold",
        "for_seconds",
        "clear_threshold",
        "severity",
        "notifiers",
        "repeat_seconds",
        "enabled",
        "description",
    }
