"""The metrics REST API: current values, the catalogue of names, and history ranges with readable
errors for bad input (422/404, never a 500)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from nox_ui.app import Services
from nox_ui.metrics.sampler import Sample
from tests.conftest import VIEWER_PASSWORD, bearer

DISK = 'disk.used_percent{mount="/"}'


@pytest.fixture
def viewer(api: TestClient) -> dict[str, str]:
    return bearer(api, "victor", VIEWER_PASSWORD)


@pytest.fixture
def last_ten_minutes(accounts: Services) -> int:
    """600 one-second samples ending now: cpu.percent is i % 100, disk a flat 37."""
    start = int(time.time()) - 600
    for i in range(600):
        accounts.metrics.history.add(
            Sample(ts=float(start + i), values={"cpu.percent": float(i % 100), DISK: 37.0}, duration=0)
        )
    return start


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_current_values_need_a_token(api: TestClient, accounts: Services, viewer: dict[str, str]) -> None:
    missing = api.get("/api/v1/metrics/current")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing bearer token"}
    assert api.get("/api/v1/metrics/current", headers={"Authorization": "Bearer nox_x"}).status_code == 401

    before = api.get("/api/v1/metrics/current", headers=viewer).json()
    assert before["values"] == {} and before["ts"] == 0  # nothing sampled yet, and nothing made up

    sample = accounts.metrics.sampler.sample()
    body = api.get("/api/v1/metrics/current", headers=viewer).json()
    assert body["ts"] == sample.ts
    assert body["values"].keys() == sample.values.keys()
    assert body["values"] == pytest.approx({sid: round(v, 3) for sid, v in sample.values.items()})
    assert 0 <= body["values"]["cpu.percent"] <= 100
    assert body["values"]["mem.total_bytes"] > 0
    assert body["degraded"] == {}
    assert body["sample_duration_ms"] == pytest.approx(sample.duration * 1000, abs=0.01)
    assert accounts.metrics.sampler.samples_taken == 1  # reading does not sample


def test_names_list_units_descriptions_and_series(
    api: TestClient, accounts: Services, viewer: dict[str, str]
) -> None:
    accounts.metrics.sampler.sample()
    assert api.get("/api/v1/metrics/names").status_code == 401
    names = {n["name"]: n for n in api.get("/api/v1/metrics/names", headers=viewer).json()}
    assert names["cpu.percent"] == {
        "name": "cpu.percent",
        "unit": "percent",
        "description": "CPU busy, all cores",
        "labels": [],
        "series": ["cpu.percent"],
    }
    assert names["mem.total_bytes"]["unit"] == "bytes"
    assert names["net.rx_bytes_per_s"]["unit"] == "bytes_per_second"
    assert names["disk.used_percent"]["labels"] == ["mount"]
    assert names["cpu.core.percent"]["series"][0] == 'cpu.core.percent{core="0"}'
    assert all(n["unit"] and n["description"] for n in names.values())


def test_history_of_the_last_minutes_at_one_second(
    api: TestClient, viewer: dict[str, str], last_ten_minutes: int
) -> None:
    start = last_ten_minutes
    response = api.get(
        "/api/v1/metrics/history",
        params={"metric": "cpu.percent", "since": str(start + 300), "until": iso(start + 600)},
        headers=viewer,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["metric"], body["tier"], body["step"]) == ("cpu.percent", "second", 1)
    assert body["since"] == start + 300 and body["until"] == start + 600
    assert len(body["points"]) == 300
    assert body["points"][0] == [start + 300, 0.0, 0.0, 0.0]  # 300 % 100
    assert body["points"][57] == [start + 357, 57.0, 57.0, 57.0]

    coarse = api.get(
        "/api/v1/metrics/history",
        params={"metric": "cpu.percent", "since": str(start), "until": str(start + 600), "step": "100"},
        headers=viewer,
    ).json()
    assert coarse["step"] == 100
    assert [p[1:] for p in coarse["points"]] == [[49.5, 0.0, 99.0]] * 6

    # Labels in any order and spacing name the same series; the answer gives the canonical id.
    disk = api.get(
        "/api/v1/metrics/history",
        params={"metric": 'disk.used_percent{ mount = "/" }', "since": str(start)},
        headers=viewer,
    ).json()
    assert disk["metric"] == DISK
    assert {tuple(p[1:]) for p in disk["points"]} == {(37.0, 37.0, 37.0)}

    # Defaults: the last hour up to now. A bare ISO time is UTC.
    default = api.get("/api/v1/metrics/history", params={"metric": "cpu.percent"}, headers=viewer).json()
    assert default["until"] - default["since"] == 3600
    assert default["until"] == pytest.approx(time.time(), abs=5)
    assert default["step"] == 4  # 3600 one-second points would exceed the budget of 1000
    assert 150 <= len(default["points"]) <= 151
    assert min(p[2] for p in default["points"]) == 0 and max(p[3] for p in default["points"]) == 99
    naive = api.get(
        "/api/v1/metrics/history",
        params={"metric": "cpu.percent", "since": "2024-01-01T00:00:00", "until": "2024-01-01T01:00:00Z"},
        headers=viewer,
    ).json()
    assert (naive["since"], naive["until"]) == (1704067200, 1704070800)


BAD_HISTORY_REQUESTS = [
    ({"since": "yesterday"}, 422, "since"),
    ({"since": "nan"}, 422, "since"),
    ({"since": "1e30"}, 422, "since"),
    ({"since": "-5"}, 422, "since"),
    ({"until": "inf"}, 422, "until"),
    ({"until": "2024-13-45"}, 422, "until"),
    ({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, 422, "before"),
    ({"since": "0", "until": "2024-01-01T00:00:00Z"}, 422, "too long"),
    ({"step": "0"}, 422, "step"),
    ({"step": "-60"}, 422, "step"),
    ({"metric": "cpu.nothing"}, 404, "unknown metric"),
    ({"metric": "cpu.percent{mount=}"}, 422, "invalid labels"),
    ({"metric": "CPU percent"}, 422, "invalid metric"),
]


def test_bad_history_requests_get_a_clear_error(api: TestClient, viewer: dict[str, str]) -> None:
    # One setup for all cases: each sign-in hashes a password, which is slow on purpose.
    for params, status, message in BAD_HISTORY_REQUESTS:
        query = {"metric": "cpu.percent"} | params
        response = api.get("/api/v1/metrics/history", params=query, headers=viewer)
        assert response.status_code == status, (params, response.text)
        assert message in response.json()["detail"], (params, response.text)


def test_history_validation_errors_from_fastapi_are_422(api: TestClient, viewer: dict[str, str]) -> None:
    assert api.get("/api/v1/metrics/history", headers=viewer).status_code == 422  # no metric
    response = api.get(
        "/api/v1/metrics/history", params={"metric": "cpu.percent", "step": "x"}, headers=viewer
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "step"]
    assert api.get("/api/v1/metrics/history", params={"metric": "cpu.percent"}).status_code == 401
