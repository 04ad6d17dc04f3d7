"""What the alerts page shows, read in one go in a worker thread (never on the event loop), how each row
of its tables reads, and what a link into the page (`?id=`, `?tab=&rule=|silence=|notifier=`) opens."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
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
from nox_ui.errors import NotFound, NoxError
from nox_ui.parsing import parse_id

HISTORY_LIMIT = 200
SILENCES_LIMIT = 100
TABS = ("active", "history", "rules", "silences", "notifiers")
# Told to a viewer who follows a notifier link, whatever the id: it says nothing about which exist.
NOTIFIER_LINKS_ROLE = "Notifier links open for operators and admins."


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


def read_all(services: Services, *, show_targets: bool, keep_silence: int | None = None) -> AlertsData:
    """Everything the tabs show. `show_targets`: where notifiers send to (operators and admins only);
    `keep_silence`: a silence listed even when older than the newest `SILENCES_LIMIT` (a link names it)."""
    alerting = services.alerts
    notifiers = services.notifiers.list()
    names = {view.id: view.name for view in notifiers}
    now = alerting.silences.now()
    silences = alerting.silences.list(limit=SILENCES_LIMIT)
    if keep_silence is not None and all(s.id != keep_silence for s in silences):
        with contextlib.suppress(NotFound):  # deleted since the link was followed: nothing to keep
            silences.append(alerting.silences.get(keep_silence))
    return AlertsData(
        live=read_live(services),
        history=[history_row(a) for a in alerting.queries.alerts("resolved", limit=HISTORY_LIMIT)],
        rules=[rule_row(rule, names) for rule in alerting.rules.list()],
        silences=[silence_row(s, now) for s in silences],
        notifiers=[notifier_row(v, show_targets=show_targets) for v in notifiers],
        names=names,
    )


@dataclass(frozen=True)
class Focus:
    """What a link into the page opens: a tab, the row to highlight in its table (a rule, an alert, a
    silence or a notifier id), the rule for the editor and the alert for the details dialog. `problem`
    is told to the user when the link names nothing that can be shown; the page renders as usual."""

    tab: str = "active"
    row: int | None = None
    rule: RuleView | None = None
    alert: int | None = None
    problem: str = ""


def focus_of(services: Services, link: Mapping[str, str | None], *, can_see_notifiers: bool) -> Focus:
    """What `link` (the page's query: tab, alert, rule, silence, notifier) opens, its target read with its
    service (in a worker thread). An id decides the tab (an alert's is Active or History by its state);
    `tab` alone selects one; a bad or unknown id is a `problem`, the tab it would open still selected."""
    alerting = services.alerts
    tab, alert, rule = link.get("tab"), link.get("alert"), link.get("rule")
    silence, notifier = link.get("silence"), link.get("notifier")
    named = {"active": alert, "rules": rule, "silences": silence, "notifiers": notifier}
    try:
        if alert is not None:
            view = alerting.queries.get(parse_id(alert, "alert"))
            return Focus("history" if view.state == "resolved" else "active", row=view.id, alert=view.id)
        if rule is not None:
            found = alerting.rules.get(parse_id(rule, "rule"))
            return Focus("rules", row=found.id, rule=found)
        if silence is not None:
            return Focus("silences", row=alerting.silences.get(parse_id(silence, "silence")).id)
        if notifier is not None:
            if not can_see_notifiers:
                return Focus("notifiers", problem=NOTIFIER_LINKS_ROLE)
            return Focus("notifiers", row=services.notifiers.get(parse_id(notifier, "notifier")).id)
    except NoxError as exc:
        return Focus(next(t for t, raw in named.items() if raw is not None), problem=exc.message)
    chosen = (tab or "active").strip().lower()
    if chosen not in TABS:
        return Focus(problem=f"no tab named {(tab or '')[:40]!r} (the tabs are: {', '.join(TABS)})")
    return Focus(chosen)


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
