"""The example plugin (examples/nox-ui-example-plugin, installed into the test environment by `make test`)
through the real panel: its page, menu entry, widget, metric, setting, notifier kind and API route, and
enabling and disabling it live."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from nicegui import ui
from nicegui.testing import User

from nox_ui.alerts import kinds
from nox_ui.app import Services
from nox_ui.prometheus import build_registry, render
from nox_ui.roles import CLI, PANEL
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer, nav_labels, sign_in

NAME = "example"
METRIC = "example.wave"
KIND = "example-file"


@pytest.fixture(autouse=True)
def _example_installed() -> Iterator[None]:
    from importlib.metadata import entry_points

    if not any(ep.name == NAME for ep in entry_points(group="nox_ui.plugins")):
        pytest.fail("the example plugin is not installed: pip install -e examples/nox-ui-example-plugin")
    yield
    kinds.unregister(KIND)  # the registry is per process: leave it as the next test expects


async def test_a_viewer_sees_the_page_menu_entry_and_widget_and_they_go_and_come_back_live(
    app_user: User, accounts: Services
) -> None:
    # New plugins start disabled: nothing of it is offered yet.
    assert accounts.plugins.view(NAME).status == "disabled"
    response = await app_user.http_client.get("/plugins/example/")
    assert response.status_code in {303, 307}, "anonymous visitors are sent to sign-in first"
    assert response.headers["location"].startswith("/login?next=/plugins/example/")

    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    assert "Example" not in nav_labels(app_user)
    assert (await app_user.http_client.get("/plugins/example/")).status_code == 404

    view = await accounts.plugins.enable(CLI, NAME)
    assert view.status == "enabled", view.reason
    # The open dashboard gains the menu entry and the widget without a reload.
    await app_user.should_see("Example", retries=50)
    assert "Example" in nav_labels(app_user)
    await app_user.should_see(marker="example-widget-value", retries=50)

    await app_user.open("/plugins/example/")
    await app_user.should_see(marker="example-title")
    (title,) = app_user.find(marker="example-title").elements
    assert isinstance(title, ui.label) and title.text == "Example wave"
    await app_user.should_see(marker="example-chart")
    # The chart fills from the sampler through the plugin's collector.
    (chart,) = app_user.find(marker="example-chart").elements
    assert isinstance(chart, ui.echart)
    deadline = time.monotonic() + 60  # a bound on a hang: the page's timer adds a point a second
    while len(chart.options["series"][0]["data"]) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    points = chart.options["series"][0]["data"]
    assert len(points) >= 2 and all(0.0 <= value <= 100.0 for _ts, value in points)

    await accounts.plugins.disable(CLI, NAME)
    assert (await app_user.http_client.get("/plugins/example/")).status_code == 404
    await app_user.open("/")
    assert "Example" not in nav_labels(app_user)
    await app_user.should_not_see(marker="example-widget-value")

    await accounts.plugins.enable(CLI, NAME)
    assert (await app_user.http_client.get("/plugins/example/")).status_code == 200


async def test_its_metric_reaches_history_alert_rules_and_prometheus(services: Services) -> None:
    view = await services.plugins.enable(CLI, NAME)
    assert view.status == "enabled" and view.metrics == (METRIC,)
    first = services.metrics.tick()
    second = services.metrics.tick()
    assert 0.0 <= first.values[METRIC] <= 100.0
    assert METRIC in second.values

    # History: the same query the history page and the API make.
    history = services.metrics.query(METRIC, time.time() - 60, time.time() + 1)
    assert [avg for _ts, avg, _min, _max in history.points]

    # Alert rules accept it like a built-in metric, and it fires on it.
    rule = services.alerts.rules.create(
        PANEL, {"name": "Wave is up", "metric": METRIC, "op": ">=", "threshold": 0}
    )
    assert rule.metric == METRIC
    services.metrics.tick()
    assert services.alerts.engine.counts().firing == 1

    # /metrics exposes it under its Prometheus name.
    text = render(build_registry(services.metrics)).decode()
    assert "nox_example_wave " in text

    # Disabled: no new values (the series goes stale), its history stays readable.
    await services.plugins.disable(CLI, NAME)
    assert METRIC not in services.metrics.tick().values
    assert "nox_example_wave " not in render(build_registry(services.metrics)).decode()
    assert services.metrics.query(METRIC, time.time() - 60, time.time() + 1).points


def test_its_setting_is_validated_and_changes_what_the_page_and_route_show(
    api: TestClient, accounts: Services
) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    viewer = bearer(api, "victor", VIEWER_PASSWORD)
    assert api.get("/api/v1/plugins/example/status", headers=viewer).status_code == 404

    enabled = api.post("/api/v1/plugins/example/enable", headers=admin)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "enabled"

    settings = api.get("/api/v1/plugins/example/settings", headers=admin).json()
    assert settings["values"] == {"title": "Example wave", "amplitude": 100}
    assert settings["schema"]["amplitude"]["maximum"] == 100

    bad = api.patch("/api/v1/plugins/example/settings", json={"amplitude": 0}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "amplitude"]
    wrong_type = api.patch("/api/v1/plugins/example/settings", json={"title": 5}, headers=admin)
    assert wrong_type.status_code == 422
    unknown = api.patch("/api/v1/plugins/example/settings", json={"colour": "red"}, headers=admin)
    assert unknown.status_code == 422
    assert accounts.plugin_settings.values(NAME) == {"title": "Example wave", "amplitude": 100}
    assert (
        api.patch("/api/v1/plugins/example/settings", json={"title": "x"}, headers=viewer).status_code == 403
    )

    good = api.patch("/api/v1/plugins/example/settings", json={"title": "Garage UPS"}, headers=admin)
    assert good.status_code == 200, good.text
    status = api.get("/api/v1/plugins/example/status", headers=viewer)
    assert status.status_code == 200 and status.json()["title"] == "Garage UPS"
    assert api.get("/api/v1/plugins/example/status").status_code == 401

    # A disabled plugin's routes answer 404; its stored setting is back when it is enabled again.
    assert api.post("/api/v1/plugins/example/disable", headers=admin).json()["status"] == "disabled"
    assert api.get("/api/v1/plugins/example/status", headers=viewer).status_code == 404
    assert api.post("/api/v1/plugins/example/enable", headers=admin).status_code == 200
    assert api.get("/api/v1/plugins/example/status", headers=viewer).json()["title"] == "Garage UPS"


def test_its_notifier_kind_sends_a_test_to_its_file_and_is_unavailable_while_disabled(
    api: TestClient, accounts: Services
) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    operator = bearer(api, "olga", OPERATOR_PASSWORD)
    body = {"name": "to file", "kind": KIND, "config": {"file_name": "alerts.log"}}
    assert api.post("/api/v1/notifiers", json=body, headers=operator).status_code == 422  # not enabled

    assert api.post("/api/v1/plugins/example/enable", headers=admin).status_code == 200
    traversal = {"name": "escape", "kind": KIND, "config": {"file_name": "../../secret.key"}}
    assert api.post("/api/v1/notifiers", json=traversal, headers=operator).status_code == 422
    created = api.post("/api/v1/notifiers", json=body, headers=operator)
    assert created.status_code == 201, created.text
    notifier_id = created.json()["id"]

    accounts.notifiers.queue.start()
    try:
        sent = api.post(f"/api/v1/notifiers/{notifier_id}/test", headers=operator)
    finally:
        accounts.notifiers.queue.stop()
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "sent", sent.json()
    written = accounts.config.data_dir / "plugin-data" / NAME / "alerts.log"
    [line] = written.read_text().splitlines()
    assert json.loads(line)["rule"] == "Test notification"

    assert api.post("/api/v1/plugins/example/disable", headers=admin).status_code == 200
    listed = {n["id"]: n for n in api.get("/api/v1/notifiers", headers=operator).json()}
    assert listed[notifier_id]["available"] is False
    again = {**body, "name": "another"}
    refused = api.post("/api/v1/notifiers", json=again, headers=operator)
    assert refused.status_code == 422 and KIND in refused.json()["detail"]
