"""What the alerts page shows, read in one go in a worker thread (never on the event loop), and how
each row of its tables reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nox_ui.alerts.notify import NotifierView
from nox_ui.alerts.queries import AlertView
from nox_ui.alerts.rules import RuleView, notifier_ids
from nox_ui.alerts.silences import SilenceView, is_active, matchers_of
from nox_ui.app import Services
from nox_ui.components.alert_format import condition_of, number, when
from nox_ui.components.notifier_dialog import notifier_target

HISTORY_LIMIT = 200
SILENCES_LIMIT = 100


@dataclass(frozen=True)
class AlertsData:
    live: list[AlertView]
    history: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    silences: list[dict[str, Any]]
    notifiers: list[dict[str, Any]]
    names: dict[int, str]  # notifier id -> name, the rule editor's choices


def read_live(services: Services) -> list[AlertView]:
    """What changes with every sample: the firing and pending alerts."""
    queries = services.alerts.queries
    return queries.alerts("firing") + queries.alerts("pending")


def read_all(services: Services, *, show_targets: bool) -> AlertsData:
    """Everything the tabs show. `show_targets`: where notifiers send to (operators and admins only)."""
    alerting = services.alerts
    notifiers = services.notifiers.list()
    names = {view.id: view.name for view in notifiers}
    now = alerting.silences.now()
    return AlertsData(
        live=read_live(services),
        history=[history_row(a) for a in alerting.queries.alerts("resolved", limit=HISTORY_LIMIT)],
        rules=[rule_row(rule, names) for rule in alerting.rules.list()],
        silences=[silence_row(s, now) for s in alerting.silences.list(limit=SILENCES_LIMIT)],
        notifiers=[notifier_row(v, show_targets=show_targets) for v in notifiers],
        names=names,
    )


def active_row(alert: AlertView) -> dict[str, Any]:
    return {
        "key": alert.key,
        "id": alert.id,
        "state": alert.state,
        "silenced": alert.silenced,
        "severity": alert.severity,
        "rule": alert.rule_name,
        "series": alert.series,
        "value": number(alert.value),
        "since": when(alert.fired_at or alert.since),
        "ack": alert.acked_by or "-",
        "can_ack": alert.id is not None and alert.state == "firing" and not alert.acked_by,
    }


def history_row(alert: AlertView) -> dict[str, Any]:
    return {
        "key": alert.key,
        "id": alert.id,
        "severity": alert.severity,
        "rule": alert.rule_name,
        "series": alert.series,
        "fired": when(alert.fired_at),
        "resolved": when(alert.resolved_at),
        "ack": alert.acked_by or "-",
    }


def rule_row(rule: RuleView, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "condition": condition_of(rule),
        "severity": rule.severity,
        "notifiers": ", ".join(names.get(i, f"#{i}") for i in notifier_ids(rule)) or "-",
        "enabled": "yes" if rule.enabled else "no",
    }


def silence_row(silence: SilenceView, now: datetime) -> dict[str, Any]:
    active = is_active(silence, now)
    status = "active" if active else ("ended" if silence.ends_at <= now else "scheduled")
    return {
        "id": silence.id,
        "matchers": ", ".join(f"{k}={v}" for k, v in matchers_of(silence).items()),
        "window": f"{when(silence.starts_at)} → {when(silence.ends_at)}",
        "comment": silence.comment,
        "by": silence.created_by,
        "status": status,
    }


def notifier_row(view: NotifierView, *, show_targets: bool) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "kind": view.kind if view.available else f"{view.kind} (unavailable: its plugin is not enabled)",
        "target": notifier_target(view) if show_targets else "(shown to operators)",
    }
