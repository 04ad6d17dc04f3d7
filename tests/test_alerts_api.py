"""The alerting REST API: rules (CRUD, 422s, 409, roles), alerts by state, acks, silences and the
preview, as served at /api/v1."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from nox_ui.app import Services
from nox_ui.metrics.sampler import Sample
from nox_ui.models import AuditEvent, Notifier
from nox_ui.roles import PANEL
from tests.conftest import OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer
from tests.test_alert_engine import Recorder

CPU = "cpu.percent"
RULE = {
    "name": "cpu hot",
    "metric": CPU,
    "op": ">",
    "threshold": 90,
    "for_seconds": 0,
    "clear_threshold": None,
    "severity": "critical",
    "notifiers": [],
    "repeat_seconds": None,
    "enabled": True,
    "description": "check the top processes",
}


@pytest.fixture
def operator(api: TestClient) -> dict[str, str]:
    return bearer(api, "olga", OPERATOR_PASSWORD)


@pytest.fixture
def viewer(api: TestClient) -> dict[str, str]:
    return bearer(api, "victor", VIEWER_PASSWORD)


@pytest.fixture
def sent(accounts: Services) -> Recorder:
    recorder = Recorder()
    accounts.alerts.engine.dispatcher = recorder
    return recorder


def actions(services: Services) -> list[str]:
    with services.db.session() as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]


def create(api: TestClient, headers: dict[str, str], **change: Any) -> dict[str, Any]:
    response = api.post("/api/v1/alerts/rules", json={**RULE, **change}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_rules_crud(
    api: TestClient, accounts: Services, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    with accounts.db.session() as session:
        session.add(Notifier(name="pager", kind="webhook", config="{}"))
        session.commit()
    rule = create(api, operator, name="root disk", notifiers=[1], metric='disk.used_percent{ mount="/" }')
    assert rule["metric"] == 'disk.used_percent{mount="/"}' and rule["notifiers"] == [1]
    assert rule["kind"] == "threshold" and rule["severity"] == "critical"

    listed = api.get("/api/v1/alerts/rules", headers=viewer)
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [rule["id"]]
    one = api.get(f"/api/v1/alerts/rules/{rule['id']}", headers=viewer)
    assert one.status_code == 200 and one.json() == rule

    patched = api.patch(
        f"/api/v1/alerts/rules/{rule['id']}", json={"threshold": 95, "repeat_seconds": 600}, headers=operator
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["threshold"] == 95 and patched.json()["repeat_seconds"] == 600

    assert (
        api.post("/api/v1/alerts/rules", json=RULE | {"name": "cpu hot"}, headers=operator).status_code == 201
    )
    duplicate = api.post("/api/v1/alerts/rules", json=RULE, headers=operator)
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]

    assert api.delete(f"/api/v1/alerts/rules/{rule['id']}", headers=operator).status_code == 204
    assert api.get(f"/api/v1/alerts/rules/{rule['id']}", headers=viewer).status_code == 404
    assert api.delete(f"/api/v1/alerts/rules/{rule['id']}", headers=operator).status_code == 404
    assert actions(accounts).count("alert.rule.create") == 2
    assert {"alert.rule.update", "alert.rule.delete"} <= set(actions(accounts))


INVALID_RULES: list[dict[str, Any]] = [
    {"metric": "nope.metric"},
    {"op": "~"},
    {"for_seconds": -5},
    {"repeat_seconds": -1},
    {"clear_threshold": 99},
    {"notifiers": [42]},
    {"severity": "urgent"},
    {"unknown": 1},
    {"threshold": "high"},
]


def test_invalid_rules_get_422(api: TestClient, operator: dict[str, str]) -> None:
    for change in INVALID_RULES:
        response = api.post("/api/v1/alerts/rules", json={**RULE, **change}, headers=operator)
        assert response.status_code == 422, (change, response.text)
        assert response.json()["detail"]
    assert api.get("/api/v1/alerts/rules", headers=operator).json() == []


def test_an_invalid_patch_gets_422_and_changes_nothing(api: TestClient, operator: dict[str, str]) -> None:
    rule = create(api, operator)
    for body in ({"op": "<>"}, {"for_seconds": -1}, {"clear_threshold": 100}, {"metric": "x.y"}):
        assert api.patch(f"/api/v1/alerts/rules/{rule['id']}", json=body, headers=operator).status_code == 422
    assert api.get(f"/api/v1/alerts/rules/{rule['id']}", headers=operator).json() == rule


def test_a_viewer_reads_but_cannot_write(
    api: TestClient, accounts: Services, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    rule = create(api, operator)
    writes = [
        ("POST", "/api/v1/alerts/rules", RULE | {"name": "x"}),
        ("PATCH", f"/api/v1/alerts/rules/{rule['id']}", {"threshold": 1}),
        ("DELETE", f"/api/v1/alerts/rules/{rule['id']}", None),
        ("POST", "/api/v1/alerts/rules/preview", RULE),
        ("POST", "/api/v1/alerts/1/ack", {}),
        (
            "POST",
            "/api/v1/silences",
            {"matchers": {"alertname": "x"}, "duration_seconds": 60, "comment": "c"},
        ),
        ("POST", "/api/v1/silences/1/end", None),
        ("DELETE", "/api/v1/silences/1", None),
    ]
    for method, url, body in writes:
        response = api.request(method, url, json=body, headers=viewer)
        assert response.status_code == 403, (method, url, response.text)
    assert actions(accounts).count("access.denied") == len(writes)
    for url in ("/api/v1/alerts/rules", "/api/v1/alerts", "/api/v1/silences"):
        assert api.get(url, headers=viewer).status_code == 200
    assert api.get("/api/v1/alerts/rules").status_code == 401


def test_alerts_by_state_and_ack(
    api: TestClient, accounts: Services, operator: dict[str, str], viewer: dict[str, str], sent: Recorder
) -> None:
    create(api, operator)
    create(api, operator, name="cpu warm", threshold=50, for_seconds=600)
    t0 = float(int(time.time()))
    accounts.alerts.engine.evaluate(Sample(ts=t0, values={CPU: 95}, duration=0))

    firing = api.get("/api/v1/alerts", params={"state": "firing"}, headers=viewer).json()
    assert [(a["rule_name"], a["state"], a["value"], a["silenced"]) for a in firing] == [
        ("cpu hot", "firing", 95, False)
    ]
    pending = api.get("/api/v1/alerts?state=pending", headers=viewer).json()
    assert [(a["rule_name"], a["id"], a["key"]) for a in pending] == [
        ("cpu warm", None, f"{pending[0]['rule_id']}:{CPU}")
    ]
    everything = api.get("/api/v1/alerts", headers=viewer).json()
    assert [a["state"] for a in everything] == ["pending", "firing"]
    assert api.get("/api/v1/alerts?state=bogus", headers=viewer).status_code == 422
    alert_id = firing[0]["id"]
    assert api.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()["state"] == "firing"
    assert api.get("/api/v1/alerts/999", headers=viewer).status_code == 404

    acked = api.post(f"/api/v1/alerts/{alert_id}/ack", json={"comment": "on it"}, headers=operator)
    assert acked.status_code == 200, acked.text
    assert acked.json()["acked_by"] == "olga" and acked.json()["ack_comment"] == "on it"
    again = api.post(f"/api/v1/alerts/{alert_id}/ack", headers=operator)
    assert again.status_code == 409
    assert api.post("/api/v1/alerts/999/ack", headers=operator).status_code == 404
    assert "alert.ack" in actions(accounts)

    accounts.alerts.engine.evaluate(Sample(ts=t0 + 1, values={CPU: 10}, duration=0))
    resolved = api.get("/api/v1/alerts?state=resolved", headers=viewer).json()
    assert [(a["id"], a["state"], a["acked_by"]) for a in resolved] == [(alert_id, "resolved", "olga")]
    assert [m.state for m in sent.messages] == ["firing", "resolved"]


def test_silences(
    api: TestClient, accounts: Services, operator: dict[str, str], viewer: dict[str, str], sent: Recorder
) -> None:
    create(api, operator)
    response = api.post(
        "/api/v1/silences",
        json={"matchers": {"alertname": "cpu hot"}, "duration_seconds": 3600, "comment": "load test"},
        headers=operator,
    )
    assert response.status_code == 201, response.text
    silence = response.json()
    assert (
        silence["active"]
        and silence["created_by"] == "olga"
        and silence["matchers"] == {"alertname": "cpu hot"}
    )

    accounts.alerts.engine.evaluate(Sample(ts=time.time() + 1, values={CPU: 99}, duration=0))
    [alert] = api.get("/api/v1/alerts?state=firing", headers=viewer).json()
    assert alert["silenced"] and sent.calls == []

    assert [s["id"] for s in api.get("/api/v1/silences?active=true", headers=viewer).json()] == [
        silence["id"]
    ]
    assert api.get("/api/v1/silences?active=false", headers=viewer).json() == []
    ended = api.post(f"/api/v1/silences/{silence['id']}/end", headers=operator)
    assert ended.status_code == 200 and not ended.json()["active"]
    assert api.post(f"/api/v1/silences/{silence['id']}/end", headers=operator).status_code == 409
    assert api.delete(f"/api/v1/silences/{silence['id']}", headers=operator).status_code == 409
    assert api.get("/api/v1/silences?active=true", headers=viewer).json() == []
    assert api.get(f"/api/v1/silences/{silence['id']}", headers=viewer).json()["comment"] == "load test"
    assert actions(accounts).count("silence.create") == 1 and actions(accounts).count("silence.end") == 1

    other = api.post(
        "/api/v1/silences",
        json={"matchers": {"mount": "/"}, "ends_at": "2100-01-01T00:00:00Z", "comment": "forever-ish"},
        headers=operator,
    )
    assert other.status_code == 422  # longer than a year
    later = api.post(
        "/api/v1/silences",
        json={
            "matchers": {"mount": "/"},
            "starts_at": time.time() + 60,
            "duration_seconds": 60,
            "comment": "soon",
        },
        headers=operator,
    )
    assert later.status_code == 201 and not later.json()["active"]
    assert api.delete(f"/api/v1/silences/{later.json()['id']}", headers=operator).status_code == 204


INVALID_SILENCES: list[dict[str, Any]] = [
    {"matchers": {}, "duration_seconds": 60, "comment": "c"},
    {"matchers": {"alertname": "x"}, "duration_seconds": 60, "comment": ""},
    {"matchers": {"alertname": "x"}, "comment": "no end"},
    {
        "matchers": {"alertname": "x"},
        "duration_seconds": 60,
        "ends_at": "2099-01-01T00:00:00Z",
        "comment": "c",
    },
    {
        "matchers": {"alertname": "x"},
        "starts_at": "2030-01-02T00:00:00Z",
        "ends_at": "2030-01-01T00:00:00Z",
        "comment": "c",
    },
    {"matchers": {"alertname": "x"}, "ends_at": "2000-01-01T00:00:00Z", "comment": "in the past"},
    {"matchers": {"not a label": "x"}, "duration_seconds": 60, "comment": "c"},
    {"matchers": {"alertname": ""}, "duration_seconds": 60, "comment": "c"},
    {"matchers": {"alertname": "x"}, "duration_seconds": -1, "comment": "c"},
]


def test_invalid_silences_get_422(api: TestClient, operator: dict[str, str]) -> None:
    for body in INVALID_SILENCES:
        response = api.post("/api/v1/silences", json=body, headers=operator)
        assert response.status_code == 422, (body, response.text)
    assert api.get("/api/v1/silences", headers=operator).json() == []


def test_the_preview(api: TestClient, accounts: Services, operator: dict[str, str]) -> None:
    start = int(time.time() // 60 * 60) - 60 * 60
    accounts.metrics.history.write(
        [(start + i * 60, {CPU: (95.0 if 10 <= i < 20 else 5.0, 0.0, 100.0)}) for i in range(40)]
    )
    response = api.post(
        "/api/v1/alerts/rules/preview?hours=2", json=RULE | {"for_seconds": 180}, headers=operator
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["series"] == [CPU] and body["resolution_seconds"] == 60 and body["note"]
    [episode] = body["episodes"]
    assert episode["series"] == CPU and episode["peak"] == 95
    assert (episode["start"], episode["end"]) == (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 13 * 60)),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 20 * 60)),
    )
    assert (
        api.post("/api/v1/alerts/rules/preview", json=RULE | {"metric": "x.y"}, headers=operator).status_code
        == 422
    )
    assert api.post("/api/v1/alerts/rules/preview?hours=0", json=RULE, headers=operator).status_code == 422
    assert api.get("/api/v1/alerts/rules", headers=operator).json() == []  # a preview saves nothing


def test_silence_times_out_of_range_are_422_not_500(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "olga", OPERATOR_PASSWORD)
    for starts_at in ("9999-12-31T23:00:00Z", "0001-01-01T00:00:00+01:00", "2001-01-01T00:00:00Z"):
        body = {
            "matchers": {"alertname": "x"},
            "starts_at": starts_at,
            "duration_seconds": 3600,
            "comment": "c",
        }
        response = api.post("/api/v1/silences", json=body, headers=headers)
        assert response.status_code == 422, (starts_at, response.text)
    assert accounts.alerts.silences.list() == []


def test_a_rule_whose_notifier_was_deleted_can_still_be_disabled(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "olga", OPERATOR_PASSWORD)
    hook = api.post(
        "/api/v1/notifiers",
        json={"name": "hook", "kind": "webhook", "config": {"url": "https://hooks.example.org/x"}},
        headers=headers,
    ).json()
    rule = api.post(
        "/api/v1/alerts/rules",
        json={"name": "Busy", "metric": "cpu.percent", "op": ">", "threshold": 90, "notifiers": [hook["id"]]},
        headers=headers,
    ).json()
    assert api.delete(f"/api/v1/notifiers/{hook['id']}", headers=headers).status_code == 204
    # the rule no longer names it (the link went with the notifier)
    assert api.get(f"/api/v1/alerts/rules/{rule['id']}", headers=headers).json()["notifiers"] == []
    response = api.patch(f"/api/v1/alerts/rules/{rule['id']}", json={"enabled": False}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False
    assert response.json()["notifiers"] == []
    # a new unknown id is still refused
    refused = api.patch(f"/api/v1/alerts/rules/{rule['id']}", json={"notifiers": [999]}, headers=headers)
    assert refused.status_code == 422


def test_notifiers_and_delivery_logs_are_for_operators_not_viewers(
    api: TestClient, accounts: Services, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    hook = accounts.notifiers.create(PANEL, "pager", "webhook", {"url": "https://hooks.example.org/x"})
    queued = accounts.notifiers.send_test(PANEL, hook.id)  # a row in the delivery log (never sent here)
    reads = [
        "/api/v1/notifiers",
        f"/api/v1/notifiers/{hook.id}",
        f"/api/v1/notifiers/{hook.id}/deliveries",
        "/api/v1/deliveries",
        f"/api/v1/deliveries?notifier_id={hook.id}",
        f"/api/v1/deliveries/{queued.id}",
    ]
    for url in reads:
        refused = api.get(url, headers=viewer)
        assert refused.status_code == 403, (url, refused.text)
        assert "hooks.example.org" not in refused.text
        assert api.get(url, headers=operator).status_code == 200, url
    assert actions(accounts).count("access.denied") == len(reads)
    assert api.get("/api/v1/deliveries").status_code == 401


def test_an_internal_notifier_target_is_422_naming_the_setting_until_an_admin_allows_it(
    api: TestClient, accounts: Services, operator: dict[str, str]
) -> None:
    body = {"name": "meta", "kind": "webhook", "config": {"url": "http://169.254.169.254/latest/meta-data/"}}
    refused = api.post("/api/v1/notifiers", json=body, headers=operator)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "config.url: refused: 169.254.169.254 is a link-local address; "
        "an admin can allow it in Settings → Security → notify_allowed_hosts"
    )
    apprise = {"name": "bell", "kind": "apprise", "config": {"urls": ["json://10.1.2.3/hook"]}}
    refused = api.post("/api/v1/notifiers", json=apprise, headers=operator)
    assert refused.status_code == 422 and "10.1.2.3 is a private address" in refused.json()["detail"]
    hook = api.post(
        "/api/v1/notifiers",
        json={"name": "ok", "kind": "webhook", "config": {"url": "https://hooks.example.org/x"}},
        headers=operator,
    ).json()
    moved = api.patch(
        f"/api/v1/notifiers/{hook['id']}",
        json={"config": {"url": "http://localhost:8080/"}},
        headers=operator,
    )
    assert moved.status_code == 422 and "localhost is a loopback name" in moved.json()["detail"]

    accounts.settings.update(PANEL, {"notify_allowed_hosts": "10.0.0.0/8, localhost"})
    assert api.post("/api/v1/notifiers", json=apprise, headers=operator).status_code == 201
    moved = api.patch(
        f"/api/v1/notifiers/{hook['id']}",
        json={"config": {"url": "http://localhost:8080/"}},
        headers=operator,
    )
    assert moved.status_code == 200 and moved.json()["config"]["url"] == "http://localhost:8080/"
    assert api.post("/api/v1/notifiers", json=body, headers=operator).status_code == 422  # not listed
