"""The alert engine driven sample by sample with explicit timestamps: when it fires, what it sends
(the recording Dispatcher is its real output boundary), what it stores, and that a restart, a
silence, an ack or a rule change do what they promise. Also: the preview replays stored history
through the same state machine and finds the same episodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from nox_ui.alerts.evaluation import AlertCounts, AlertEngine
from nox_ui.alerts.messages import AlertMessage
from nox_ui.alerts.preview import preview
from nox_ui.alerts.queries import AlertQueries
from nox_ui.alerts.rules import RuleDef
from nox_ui.alerts.state import Condition, advance, replay
from nox_ui.alerts.store import SqlAlertStore
from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden
from nox_ui.metrics.sampler import Sample
from nox_ui.models import Alert, AuditEvent, Notifier
from nox_ui.roles import PANEL, Principal
from nox_ui.services.audit import actor_of

CPU = "cpu.percent"
ROOT = 'disk.used_percent{mount="/"}'
DATA = 'disk.used_percent{mount="/data"}'


class Recorder:
    """A Dispatcher that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[AlertMessage, list[int]]] = []

    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        self.calls.append((message, list(notifier_ids)))

    @property
    def messages(self) -> list[AlertMessage]:
        return [message for message, _ in self.calls]

    def states(self) -> list[str]:
        return [("repeat" if m.repeat else m.state) for m in self.messages]


@pytest.fixture
def t0() -> float:
    """Sample times start now, on the next whole second. A silence that must cover them starts at an
    explicit time (`at(t0)`, or before it when the listing's "silenced now" is checked too), not at
    the wall-clock time it is created, which may be after t0 on a busy machine."""
    return float(int(time.time()) + 1)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@pytest.fixture
def sent(services: Services) -> Recorder:
    recorder = Recorder()
    services.alerts.engine.dispatcher = recorder
    return recorder


@pytest.fixture
def pager(services: Services) -> int:
    with services.db.session() as session:
        row = Notifier(name="pager", kind="webhook", config="{}")
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


@pytest.fixture
def olga(accounts: Services) -> Principal:
    return actor_of(accounts.users.get_by_username("olga"))


def rule(services: Services, **fields: Any) -> RuleDef:
    return services.alerts.rules.create(PANEL, {"name": "cpu hot", "metric": CPU, **fields}).definition()


def feed(
    engine: AlertEngine, start: float, values: Iterable[float], series: str = CPU, step: float = 1
) -> float:
    """One sample per value, `step` seconds apart; returns the time after the last."""
    ts = start
    for value in values:
        engine.evaluate(Sample(ts=ts, values={series: value}, duration=0))
        ts += step
    return ts


def stored(services: Services) -> list[Alert]:
    with services.db.session() as session:
        return list(session.exec(select(Alert).order_by(col(Alert.id))).all())


def actions(services: Services, prefix: str) -> list[AuditEvent]:
    with services.db.session() as session:
        return [e for e in session.exec(select(AuditEvent)).all() if e.action.startswith(prefix)]


# -- the pure core -----------------------------------------------------------------------------------


def test_advance_is_the_documented_state_machine() -> None:
    cond = Condition.of(
        RuleDef(id=1, name="r", metric=CPU, op=">", threshold=90, for_seconds=10, clear_threshold=80)
    )
    track, event = advance(cond, None, 50, 0)
    assert track is None and event is None  # inactive stays inactive
    track, event = advance(cond, None, 95, 0)
    assert track is not None and track.fired_at is None and event is None  # pending since 0
    track, event = advance(cond, track, 96, 9)
    assert event is None and track is not None and track.peak == 96
    track, event = advance(cond, track, 92, 10)
    assert event == "fire" and track is not None and track.fired_at == 10
    track, event = advance(cond, track, float("nan"), 11)
    assert event is None and track is not None  # NaN changes nothing
    track, event = advance(cond, track, 85, 12)
    assert event is None and track is not None  # between clear and threshold: still firing
    track, event = advance(cond, track, 80, 13)
    assert event == "resolve" and track is None  # at or below clear_threshold


# -- firing and resolving ----------------------------------------------------------------------------


def test_a_rule_fires_after_for_seconds_with_one_message_and_resolves_with_one(
    services: Services, sent: Recorder, pager: int, t0: float
) -> None:
    engine = services.alerts.engine
    rule(services, op=">", threshold=90, for_seconds=30, notifiers=[pager], description="runbook: clean /tmp")
    ts = feed(engine, t0, [95] * 30)  # t0 .. t0+29: held 29 s
    assert sent.calls == []
    [pending] = services.alerts.queries.alerts("pending")
    assert pending.id is None and pending.state == "pending" and pending.since.timestamp() == t0
    assert engine.counts() == AlertCounts(firing=0, pending=1, unacknowledged=0)

    ts = feed(engine, ts, [97] * 60)  # t0+30 fires; a minute more sends nothing
    assert sent.states() == ["firing"]
    message, notifiers = sent.calls[0]
    [row] = stored(services)
    assert notifiers == [pager]
    assert message.alert_id == row.id and message.url.endswith(f"/alerts?id={row.id}")
    assert (message.rule_name, message.metric, message.severity) == ("cpu hot", CPU, "warning")
    assert message.started_at.timestamp() == t0 + 30 and message.ended_at is None
    assert message.value == 97 and message.threshold == 90 and message.description == "runbook: clean /tmp"
    assert row.state == "firing" and row.pending_since.timestamp() == t0
    assert row.fired_at.timestamp() == t0 + 30 and row.last_notified_at is not None
    [firing] = services.alerts.queries.alerts("firing")
    assert firing.id == row.id and firing.value == 97 and not firing.silenced
    assert engine.counts() == AlertCounts(firing=1, pending=0, unacknowledged=1)

    end = ts
    feed(engine, ts, [40] * 30)
    assert sent.states() == ["firing", "resolved"]
    resolved = sent.messages[1]
    assert resolved.alert_id == row.id and resolved.ended_at is not None
    assert resolved.ended_at.timestamp() == end and resolved.value == 40
    [row] = stored(services)
    assert row.state == "resolved" and row.resolved_at is not None and row.resolved_at.timestamp() == end
    assert [a.id for a in services.alerts.queries.alerts("resolved")] == [row.id]
    assert engine.counts() == AlertCounts(firing=0, pending=0, unacknowledged=0)


def test_for_seconds_zero_fires_on_the_first_sample(services: Services, sent: Recorder, t0: float) -> None:
    rule(services, op=">=", threshold=50, for_seconds=0)
    feed(services.alerts.engine, t0, [49, 50])
    assert sent.states() == ["firing"]
    assert sent.messages[0].started_at.timestamp() == t0 + 1


def test_a_value_flapping_faster_than_for_seconds_sends_nothing(
    services: Services, sent: Recorder, t0: float
) -> None:
    rule(services, op=">", threshold=90, for_seconds=30)
    flapping = ([95] * 25 + [85]) * 20  # 25 s above, one sample below, again and again
    feed(services.alerts.engine, t0, flapping)
    assert sent.calls == [] and stored(services) == []


def test_hysteresis_holds_between_clear_threshold_and_threshold(
    services: Services, sent: Recorder, t0: float
) -> None:
    rule(services, op=">", threshold=90, for_seconds=0, clear_threshold=80)
    engine = services.alerts.engine
    ts = feed(engine, t0, [95, 85, 89.9, 80.1, 88])
    assert sent.states() == ["firing"]  # between 80 and 90 it keeps firing
    ts = feed(engine, ts, [80])
    assert sent.states() == ["firing", "resolved"]  # resolves at or below clear_threshold
    ts = feed(engine, ts, [85, 90])
    assert sent.states() == ["firing", "resolved"]  # re-arming needs the threshold itself
    feed(engine, ts, [91])
    assert sent.states() == ["firing", "resolved", "firing"]
    assert [row.state for row in stored(services)] == ["resolved", "firing"]


def test_hysteresis_for_a_below_rule(services: Services, sent: Recorder, t0: float) -> None:
    rule(services, metric="mem.available_bytes", op="<", threshold=100, clear_threshold=200)
    feed(services.alerts.engine, t0, [50, 150, 199, 200], series="mem.available_bytes")
    assert sent.states() == ["firing", "resolved"]
    assert sent.messages[1].ended_at is not None and sent.messages[1].ended_at.timestamp() == t0 + 3


def test_each_matching_series_has_its_own_episode_and_a_selector_narrows(
    services: Services, sent: Recorder, t0: float
) -> None:
    engine = services.alerts.engine
    services.alerts.rules.create(PANEL, {"name": "any disk", "metric": "disk.used_percent", "threshold": 90})
    services.alerts.rules.create(PANEL, {"name": "root disk", "metric": ROOT, "threshold": 90})
    engine.evaluate(Sample(ts=t0, values={ROOT: 95, DATA: 99, CPU: 99}, duration=0))
    fired = sorted((m.rule_name, m.metric, m.labels["mount"]) for m in sent.messages)
    assert fired == [("any disk", ROOT, "/"), ("any disk", DATA, "/data"), ("root disk", ROOT, "/")]
    engine.evaluate(Sample(ts=t0 + 1, values={ROOT: 95, DATA: 10, CPU: 99}, duration=0))
    assert [(m.rule_name, m.metric) for m in sent.messages if m.state == "resolved"] == [("any disk", DATA)]


def test_a_series_that_disappears_keeps_its_firing_alert(
    services: Services, sent: Recorder, t0: float
) -> None:
    engine = services.alerts.engine
    rule(services, metric="disk.used_percent", threshold=90)
    engine.evaluate(Sample(ts=t0, values={ROOT: 95, DATA: 95}, duration=0))
    engine.evaluate(Sample(ts=t0 + 1, values={ROOT: 95}, duration=0))  # /data unmounted
    assert sent.states() == ["firing", "firing"]
    assert sorted(a.series for a in services.alerts.queries.alerts("firing")) == [ROOT, DATA]
    engine.evaluate(Sample(ts=t0 + 2, values={ROOT: 95, DATA: 20}, duration=0))
    assert sent.states() == ["firing", "firing", "resolved"] and sent.messages[2].metric == DATA


# -- silences, repeats, acks ---------------------------------------------------------------------------


def test_a_silenced_alert_notifies_nobody_but_still_shows(
    services: Services, sent: Recorder, pager: int, t0: float
) -> None:
    engine = services.alerts.engine
    rule(services, threshold=90, notifiers=[pager], repeat_seconds=60)
    silence = services.alerts.silences.create(
        PANEL, {"alertname": "cpu hot"}, "maintenance window", starts_at=at(t0 - 60), duration_seconds=3600
    )
    ts = feed(engine, t0, [95] * 200)
    [firing] = services.alerts.queries.alerts("firing")
    assert firing.silenced and firing.state == "firing"
    feed(engine, ts, [10])
    assert sent.calls == []  # no firing, no repeats, no resolved
    assert [row.state for row in stored(services)] == ["resolved"]

    # a silence on another rule or label does not apply; an ended one neither
    services.alerts.silences.end(PANEL, silence.id or 0)
    services.alerts.silences.create(PANEL, {"alertname": "other"}, "not this one", duration_seconds=3600)
    feed(engine, ts + 1, [95])
    assert sent.states() == ["firing"]


def test_a_silence_on_a_label_matches_only_that_series(services: Services, sent: Recorder, t0: float) -> None:
    rule(services, metric="disk.used_percent", threshold=90)
    services.alerts.silences.create(
        PANEL,
        {"mount": "/data", "metric": "disk.used_percent"},
        "resizing",
        starts_at=at(t0),
        duration_seconds=600,
    )
    services.alerts.engine.evaluate(Sample(ts=t0, values={ROOT: 95, DATA: 95}, duration=0))
    assert [m.metric for m in sent.messages] == [ROOT]


def test_when_a_silence_ends_a_still_firing_alert_is_notified_once(
    services: Services, sent: Recorder, t0: float
) -> None:
    rule(services, threshold=90)
    services.alerts.silences.create(
        PANEL, {"alertname": "cpu hot"}, "short", starts_at=at(t0), duration_seconds=30
    )
    feed(services.alerts.engine, t0, [95] * 100)
    assert sent.states() == ["firing"]
    assert sent.messages[0].started_at.timestamp() == t0  # the episode's start, sent late


def test_repeat_seconds_re_notifies_until_acknowledged(
    services: Services, sent: Recorder, olga: Principal, t0: float
) -> None:
    engine = services.alerts.engine
    rule(services, threshold=90, repeat_seconds=60)
    ts = feed(engine, t0, [95] * 60)
    assert sent.states() == ["firing"]
    ts = feed(engine, ts, [95] * 61)  # t0+60 and t0+120
    assert sent.states() == ["firing", "repeat", "repeat"]
    assert all(m.alert_id == sent.messages[0].alert_id for m in sent.messages)

    [firing] = services.alerts.queries.alerts("firing")
    assert firing.id is not None
    acked = services.alerts.queries.ack(olga, firing.id, "looking into it")
    assert acked.acked_by == "olga" and acked.ack_comment == "looking into it" and acked.acked_at is not None
    assert engine.counts().unacknowledged == 0
    ts = feed(engine, ts, [95] * 300)
    assert sent.states() == ["firing", "repeat", "repeat"]  # acknowledged: no more repeats
    feed(engine, ts, [1])
    assert sent.states()[-1] == "resolved"  # but the resolution is still announced

    [event] = actions(services, "alert.ack")
    assert event.actor_name == "olga" and event.target_id == str(firing.id)
    assert json.loads(event.details)["comment"] == "looking into it"
    with pytest.raises(Conflict):
        services.alerts.queries.ack(olga, firing.id)  # resolved now


def test_ack_needs_an_operator_and_refuses_twice(
    accounts: Services, sent: Recorder, olga: Principal, t0: float
) -> None:
    engine = accounts.alerts.engine
    rule(accounts, threshold=90)
    feed(engine, t0, [95])
    [firing] = accounts.alerts.queries.alerts("firing")
    assert firing.id is not None
    viewer = actor_of(accounts.users.get_by_username("victor"))
    with pytest.raises(Forbidden):
        accounts.alerts.queries.ack(viewer, firing.id)
    assert [e.details for e in actions(accounts, "access.denied")]
    accounts.alerts.queries.ack(olga, firing.id)
    with pytest.raises(Conflict, match="already acknowledged by olga"):
        accounts.alerts.queries.ack(olga, firing.id)


# -- restart -------------------------------------------------------------------------------------------


def restarted(services: Services) -> tuple[AlertEngine, Recorder]:
    """A second engine over the same database, as after a process restart."""
    recorder = Recorder()
    engine = AlertEngine(SqlAlertStore(services.db), recorder, base_url="http://panel")
    engine.set_rules(services.alerts.rules.definitions())
    engine.set_silences(services.alerts.silences.definitions())
    return engine, recorder


def test_a_restart_keeps_a_firing_alert_without_notifying_again_and_resolves_it_once(
    services: Services, sent: Recorder, t0: float
) -> None:
    rule(services, threshold=90, for_seconds=10)
    feed(services.alerts.engine, t0, [95] * 20)
    assert sent.states() == ["firing"]
    [row] = stored(services)

    engine, again = restarted(services)
    assert engine.restore() == 1
    assert engine.counts().firing == 1
    ts = feed(engine, t0 + 100, [96] * 50)
    assert again.calls == []  # still firing: no second firing message
    assert [a.id for a in AlertQueries(services.db, engine, services.audit).alerts("firing")] == [row.id]
    feed(engine, ts, [10, 10])
    assert again.states() == ["resolved"]
    assert again.messages[0].alert_id == row.id and again.messages[0].started_at.timestamp() == t0 + 10
    assert [r.state for r in stored(services)] == ["resolved"]


def test_a_restart_keeps_counting_repeat_seconds_from_the_last_message(
    services: Services, sent: Recorder, t0: float
) -> None:
    rule(services, threshold=90, repeat_seconds=60)
    feed(services.alerts.engine, t0, [95])
    engine, again = restarted(services)
    engine.restore()
    feed(engine, t0 + 30, [95] * 30)  # up to t0+59
    assert again.calls == []
    feed(engine, t0 + 60, [95])
    assert again.states() == ["repeat"]


def test_a_restart_resolves_silently_an_alert_whose_rule_was_disabled_meanwhile(
    services: Services, sent: Recorder, t0: float
) -> None:
    stored_rule = rule(services, threshold=90)
    feed(services.alerts.engine, t0, [95])
    engine, again = restarted(services)
    engine.set_rules([RuleDef(**{**stored_rule.__dict__, "enabled": False})])
    assert engine.restore() == 0
    assert [r.state for r in stored(services)] == ["resolved"] and again.calls == []


# -- no data -------------------------------------------------------------------------------------------


def test_a_nodata_rule_fires_when_its_series_is_silent_and_resolves_when_it_returns(
    services: Services, sent: Recorder, t0: float
) -> None:
    engine = services.alerts.engine
    services.alerts.rules.create(
        PANEL, {"name": "data disk gone", "kind": "nodata", "metric": DATA, "for_seconds": 30}
    )
    feed(engine, t0, [50] * 10, series=DATA)
    ts = feed(engine, t0 + 10, [50] * 29, series=ROOT)  # silent 29 s after the last /data sample
    assert sent.calls == []
    feed(engine, ts, [50], series=ROOT)
    assert sent.states() == ["firing"]
    message = sent.messages[0]
    assert message.metric == DATA and message.labels == {"mount": "/data"} and message.threshold == 30
    assert message.value == 30
    feed(engine, ts + 1, [50], series=DATA)
    assert sent.states() == ["firing", "resolved"]


def test_a_restart_keeps_a_nodata_alert_firing_while_still_silent(
    services: Services, sent: Recorder, t0: float
) -> None:
    services.alerts.rules.create(
        PANEL, {"name": "cpu silent", "kind": "nodata", "metric": CPU, "for_seconds": 10}
    )
    feed(services.alerts.engine, t0, [1] * 20, series=ROOT)
    assert sent.states() == ["firing"]
    engine, again = restarted(services)
    assert engine.restore() == 1
    feed(engine, t0 + 300, [1] * 5, series=ROOT)
    assert again.calls == []
    feed(engine, t0 + 305, [1], series=CPU)
    assert again.states() == ["resolved"]


# -- rule changes ----------------------------------------------------------------------------------------


def test_a_rule_change_applies_at_the_next_sample(services: Services, sent: Recorder, t0: float) -> None:
    engine = services.alerts.engine
    row = services.alerts.rules.create(PANEL, {"name": "cpu hot", "metric": CPU, "threshold": 90})
    assert row.id is not None
    feed(engine, t0, [95])
    services.alerts.rules.update(PANEL, row.id, {"threshold": 99})
    assert sent.states() == ["firing"]
    feed(engine, t0 + 1, [95])  # no longer > 99
    assert sent.states() == ["firing", "resolved"]
    services.alerts.rules.update(PANEL, row.id, {"metric": ROOT})
    feed(engine, t0 + 2, [100])
    assert sent.states() == ["firing", "resolved"]  # cpu.percent is not watched any more
    feed(engine, t0 + 3, [100], series=ROOT)
    assert sent.states() == ["firing", "resolved", "firing"]


def test_disabling_or_deleting_a_rule_resolves_its_firing_alerts_at_once(
    services: Services, sent: Recorder, t0: float
) -> None:
    engine = services.alerts.engine
    first = services.alerts.rules.create(PANEL, {"name": "a", "metric": CPU, "threshold": 90})
    second = services.alerts.rules.create(PANEL, {"name": "b", "metric": CPU, "threshold": 80})
    assert first.id is not None and second.id is not None
    feed(engine, t0, [95])
    assert sent.states() == ["firing", "firing"]
    services.alerts.rules.update(PANEL, first.id, {"enabled": False})
    assert sent.states() == ["firing", "firing", "resolved"]
    assert sent.messages[2].rule_name == "a" and sent.messages[2].extra == {"reason": "rule disabled"}
    services.alerts.rules.delete(PANEL, second.id)
    assert sent.states() == ["firing", "firing", "resolved", "resolved"]
    assert sent.messages[3].alert_id is None  # its history went with the rule
    assert engine.counts().firing == 0
    feed(engine, t0 + 1, [99])
    assert len(sent.calls) == 4


# -- the preview -----------------------------------------------------------------------------------------


def test_the_preview_finds_the_episodes_the_engine_fires_on_the_same_recorded_series(
    services: Services,
) -> None:
    now = time.time()
    start = int(now // 60 * 60) - 180 * 60
    root = [50] * 10 + [95] * 5 + [50] * 10 + [95] * 2 + [50] * 5 + [95] * 4 + [85] * 3 + [70] * 2 + [93] * 20
    data = [92] * 30 + [79] * 5 + [91] * 3 + [60] * 10 + [99] * 3
    minutes = []
    for i in range(max(len(root), len(data))):
        values = {}
        if i < len(root):
            values[ROOT] = (float(root[i]), float(root[i]), float(root[i]))
        if i < len(data):
            values[DATA] = (float(data[i]), float(data[i]), float(data[i]))
        minutes.append((start + i * 60, values))
    services.metrics.history.write(minutes)

    body = {
        "name": "disk",
        "metric": "disk.used_percent",
        "threshold": 90,
        "for_seconds": 120,
        "clear_threshold": 80,
    }
    result = services.alerts.preview(PANEL, body, hours=4)
    assert result.resolution_seconds == 60 and "minute" in result.note
    assert result.series == [ROOT, DATA]
    from_preview = [(e.series, e.pending_since, e.start, e.end) for e in result.episodes]

    recorder = Recorder()
    engine = AlertEngine(SqlAlertStore(services.db), recorder)  # an unsaved rule (id 0) writes no rows
    engine.set_rules([services.alerts.rules.definition(body)])
    for ts, values in minutes:
        engine.evaluate(Sample(ts=float(ts), values={sid: v[0] for sid, v in values.items()}, duration=0))
    opened: dict[str, float] = {}
    from_engine: list[tuple[str, float, float | None]] = []
    for message in recorder.messages:
        if message.state == "firing":
            opened[message.metric] = message.started_at.timestamp()
        else:
            assert message.ended_at is not None
            from_engine.append((message.metric, opened.pop(message.metric), message.ended_at.timestamp()))
    from_engine += [(metric, started, None) for metric, started in opened.items()]

    assert sorted((s, b, e) for s, _p, b, e in from_preview) == sorted(from_engine)

    def minute(ts: float | None) -> int | None:
        return None if ts is None else int((ts - start) // 60)

    assert sorted((s, minute(b), minute(e)) for s, _p, b, e in from_preview) == [
        (ROOT, 12, 15),  # held from minute 10: fires at 12 (120 s), 50 clears
        (ROOT, 34, 39),  # 85 keeps it firing (clear_threshold 80), 70 clears
        (ROOT, 43, None),  # still firing at the end
        (DATA, 2, 30),  # 79 clears
        (DATA, 37, 38),  # three minutes of 91: held exactly 120 s
        (DATA, 50, None),
    ]  # and the two-minute run of 95 on / at minute 25 held only 60 s: nothing
    assert all(e.peak >= 91 for e in result.episodes)


def test_the_nodata_preview_fires_on_gaps(services: Services) -> None:
    start = int(time.time() // 60 * 60) - 120 * 60
    present = [i for i in range(120) if not 30 <= i < 40]
    services.metrics.history.write([(start + i * 60, {DATA: (1.0, 1.0, 1.0)}) for i in present])
    body = {"name": "gone", "kind": "nodata", "metric": DATA, "for_seconds": 300}
    episodes = services.alerts.preview(PANEL, body, hours=2).episodes
    assert [(e.start - start, (e.end or 0) - start) for e in episodes] == [(34 * 60, 40 * 60)]


def test_replay_is_what_preview_runs() -> None:
    cond = Condition.of(RuleDef(id=0, name="r", metric=CPU, threshold=1, for_seconds=60))
    points = [(0.0, 2.0), (60.0, 2.0), (120.0, 0.0), (180.0, 5.0)]
    assert [(e.start, e.end, e.peak) for e in replay(cond, CPU, points)] == [(60.0, 120.0, 2.0)]


def test_preview_of_a_metric_without_history_is_empty(services: Services) -> None:
    result = preview(
        services.alerts.rules.definition({"name": "x", "metric": ROOT}), services.metrics.history
    )
    assert result.series == [] and result.episodes == []


# -- on the event loop -----------------------------------------------------------------------------------


async def test_on_the_event_loop_writes_go_to_a_worker_thread_and_messages_follow(
    services: Services, sent: Recorder, t0: float
) -> None:
    engine = services.alerts.engine
    counts: list[AlertCounts] = []
    engine.changed.connect(counts.append)
    rule(services, threshold=90)
    engine.on_sample(Sample(ts=t0, values={CPU: 95}, duration=0))
    assert sent.calls == []  # the row is written first, off the loop; the message follows it
    await engine.drain()
    assert sent.states() == ["firing"] and sent.messages[0].alert_id == stored(services)[0].id
    engine.on_sample(Sample(ts=t0 + 1, values={CPU: 5}, duration=0))
    await engine.drain()
    assert sent.states() == ["firing", "resolved"]
    assert [r.state for r in stored(services)] == ["resolved"]
    # each change is announced at once and again when its row is written (pages re-read the database)
    assert [c.firing for c in counts] == [1, 1, 0, 0]
    await asyncio.sleep(0)
    engine.close()


# -- cost --------------------------------------------------------------------------------------------


def test_the_benchmark_runs_the_engine_over_a_store_that_keeps_nothing(t0: float) -> None:
    from bench.alerts_bench import synthetic_rules, time_evaluate

    rules = synthetic_rules([CPU, ROOT], 10)
    assert len(rules) == 10 and all(r.enabled for r in rules)
    samples = [Sample(ts=t0 + i, values={CPU: 50.0, ROOT: 50.0}, duration=0) for i in range(3)]
    assert time_evaluate(rules, samples, rounds=2) > 0
