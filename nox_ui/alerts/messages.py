"""What the engine hands to the notifiers: one message per state change of one alert episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AlertMessage:
    rule_id: int | None  # None for a notifier test
    rule_name: str
    state: str  # "firing" | "resolved"
    severity: str  # "info" | "warning" | "critical"
    metric: str  # the series id, e.g. disk.used_percent{mount="/"}
    labels: dict[str, str]
    value: float | None
    threshold: float
    started_at: datetime  # when the episode started firing
    ended_at: datetime | None  # when it resolved
    url: str  # a link to the alert in the panel
    description: str = ""
    alert_id: int | None = None  # None for a notifier test
    repeat: bool = False  # a re-notification while still firing (repeat_seconds)
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook and the facts an email or apprise message carries."""
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule": self.rule_name,
            "state": self.state,
            "severity": self.severity,
            "metric": self.metric,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "url": self.url,
            "description": self.description,
            "repeat": self.repeat,
        }

    @property
    def subject(self) -> str:
        prefix = "[RESOLVED]" if self.state == "resolved" else f"[{self.severity.upper()}]"
        return f"{prefix} {self.rule_name} on {self.metric}"


class Dispatcher(Protocol):
    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        """Queue the message for each notifier and return at once (never blocks sampling)."""
        ...
