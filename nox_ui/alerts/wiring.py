"""Alerting as the rest of the panel sees it (`Services.alerts`), and the wiring the composition root
calls once: rules and silences feed the engine, firing episodes are restored, the engine subscribes to
every sample of the metrics bus."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nox_ui.alerts.evaluation import AlertEngine
from nox_ui.alerts.messages import Dispatcher
from nox_ui.alerts.preview import Preview, preview
from nox_ui.alerts.queries import AlertQueries
from nox_ui.alerts.rules import RuleIn, RuleService
from nox_ui.alerts.silences import SilenceService
from nox_ui.alerts.store import SqlAlertStore
from nox_ui.db import Database
from nox_ui.metrics.history import HistoryStore
from nox_ui.metrics.service import MetricsService
from nox_ui.roles import Principal
from nox_ui.services.audit import AuditService


@dataclass
class Alerting:
    """Rules, silences, the engine (evaluation, live counts, `changed`) and the queries (list, get,
    ack), as `Services.alerts`."""

    rules: RuleService
    silences: SilenceService
    engine: AlertEngine
    queries: AlertQueries
    history: HistoryStore

    def preview(
        self, actor: Principal, data: RuleIn | Mapping[str, Any], *, hours: float = 24, ip: str = ""
    ) -> Preview:
        """What `data` (a rule, saved or not) would have fired over the last `hours` (operators)."""
        self.rules.require_operator(actor, "alert.rule.preview", ip=ip)
        return preview(self.rules.definition(data), self.history, hours=hours, now=self.engine.clock())

    def close(self) -> None:
        self.engine.close()


def wire_alerting(
    db: Database, audit: AuditService, metrics: MetricsService, *, base_url: str, dispatcher: Dispatcher
) -> Alerting:
    """Build the alerting services, feed rules and silences into the engine (now and on every change),
    restore firing episodes, and subscribe the engine to every sample of the metrics bus. The engine
    reports to the metrics' supervisor (the panel's one)."""
    rules = RuleService(db, audit, metrics.specs)
    silences = SilenceService(db, audit)
    engine = AlertEngine(SqlAlertStore(db), dispatcher, base_url=base_url, supervisor=metrics.supervisor)
    rules.changed.connect(engine.set_rules)
    engine.set_rules(rules.definitions())
    silences.changed.connect(engine.set_silences)
    engine.set_silences(silences.definitions())
    engine.restore()
    metrics.bus.connect(engine.on_sample)
    return Alerting(
        rules=rules,
        silences=silences,
        engine=engine,
        queries=AlertQueries(db, engine, audit),
        history=metrics.history,
    )
