"""GET /metrics: the last sample in Prometheus text format, valid for promtool, behind a scoped token."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from typing import ClassVar

import psutil
import pytest
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.metrics.collectors import Collector, Values
from nox_ui.metrics.sampler import CollectorHealth
from nox_ui.metrics.series import MetricSpec, series_id
from nox_ui.prometheus import build_registry, render
from tests.conftest import ADMIN_PASSWORD


def exposition(services: Services) -> str:
    return render(build_registry(services.metrics)).decode()


def value_of(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in the output")


class Broken(Collector):
    name = "broken"

    def collect(self, now: float) -> Values:
        raise OSError("no such device")


class OddMounts(Collector):
    """Mount points may hold quotes, backslashes and spaces; the exposition must escape them."""

    name = "odd"
    specs: ClassVar[tuple[MetricSpec, ...]] = ()

    def collect(self, now: float) -> Values:
        return {
            series_id("disk.used_percent", {"mount": '/mnt/my "usb" disk'}): 12.5,
            series_id("disk.used_percent", {"mount": "/mnt/back\\slash\nnew line"}): 50.0,
        }


def add_collector(services: Services, collector: Collector) -> None:
    services.metrics.sampler.collectors.append(collector)
    services.metrics.sampler.health[collector.name] = CollectorHealth()


def test_the_exposition_carries_host_and_panel_metrics(services: Services) -> None:
    sampler = services.metrics.sampler
    sampler.sample()
    time.sleep(0.2)
    sampler.sample()
    text = exposition(services)

    assert "# TYPE nox_cpu_percent gauge" in text
    assert 0 <= value_of(text, "nox_cpu_percent") <= 100
    assert value_of(text, "nox_mem_used_percent") == pytest.approx(psutil.virtual_memory().percent, abs=5)
    assert "# HELP nox_mem_used_percent memory in use (percent)" in text
    assert 'nox_cpu_core_percent{core="0"}' in text
    assert 'nox_net_rx_bytes_per_second{iface="lo"}' in text  # _per_s spelled out for Prometheus
    assert 'nox_ui_collector_up{collector="cpu"} 1.0' in text
    assert 0 < value_of(text, "nox_ui_sample_duration_seconds") < 5
    assert value_of(text, "nox_ui_connected_clients") == 0
    assert 'nox_ui_collector_errors_total{collector="cpu"} 0.0' in text
    assert "nan" not in text.lower()


def test_disk_usage_matches_each_reported_filesystem(services: Services) -> None:
    """Every mount the exposition reports, "/" where it is a real disk; under an overlay root (a
    container) the others, and where there is none the test says so instead of passing quietly."""
    services.metrics.sampler.sample()
    text = exposition(services)
    mounts = re.findall(r'^nox_disk_used_percent\{mount="([^"\\]*)"\} ', text, re.MULTILINE)
    if not mounts:
        pytest.skip("no real disk mount is reported on this machine: disk usage accuracy NOT checked")
    for mount in mounts:
        expected = psutil.disk_usage(mount).percent
        assert value_of(text, f'nox_disk_used_percent{{mount="{mount}"}}') == pytest.approx(expected, abs=1)


def test_a_broken_collector_shows_as_down_with_its_error_count(services: Services) -> None:
    add_collector(services, Broken())
    services.metrics.sampler.sample()
    services.metrics.sampler.sample()
    text = exposition(services)
    assert 'nox_ui_collector_up{collector="broken"} 0.0' in text
    assert 'nox_ui_collector_errors_total{collector="broken"} 2.0' in text
    assert 'nox_ui_collector_up{collector="memory"} 1.0' in text
    assert "nox_mem_used_percent " in text


def test_scraping_never_takes_a_sample(services: Services) -> None:
    sampler = services.metrics.sampler
    assert exposition(services).count("nox_cpu_percent") == 0  # nothing sampled yet: no made-up values
    sample = sampler.sample()
    taken = sampler.samples_taken
    registry = build_registry(services.metrics)
    first = render(registry).decode()
    time.sleep(0.15)
    second = render(registry).decode()
    assert sampler.samples_taken == taken
    uptime = sample.values["system.uptime_seconds"]
    assert value_of(first, "nox_system_uptime_seconds") == uptime
    assert value_of(second, "nox_system_uptime_seconds") == uptime  # the same sample, not a new reading


def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if path is None:
        reason = "promtool not installed (Debian package 'prometheus'): the exposition is NOT lint-checked"
        if os.environ.get("NOX_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_promtool_accepts_the_exposition(services: Services) -> None:
    tool = promtool()
    add_collector(services, Broken())
    add_collector(services, OddMounts())
    services.metrics.sampler.sample()
    time.sleep(0.1)
    services.metrics.sampler.sample()
    text = exposition(services)
    assert r'nox_disk_used_percent{mount="/mnt/my \"usb\" disk"} 12.5' in text
    assert r'nox_disk_used_percent{mount="/mnt/back\\slash\nnew line"} 50.0' in text

    checked = subprocess.run(
        [tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30, check=False
    )
    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, problems
    assert problems.strip() == "", problems

    # promtool really reads what it is given: a broken exposition fails.
    bad = subprocess.run(
        [tool, "check", "metrics"],
        input=b"# TYPE x_total counter\nx_total{a=} 1\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0


# -- over HTTP ---------------------------------------------------------------------------------------


async def wait_for_sample(services: Services) -> None:
    deadline = time.monotonic() + 60  # a bound on a hang: the first tick comes within a second when idle
    while services.metrics.last is None:
        assert time.monotonic() < deadline, "the sampler took no sample in 60 s"
        await asyncio.sleep(0.05)


async def test_metrics_route_wants_a_token_with_the_metrics_scope(app_user: User, accounts: Services) -> None:
    client = app_user.http_client
    await wait_for_sample(accounts)

    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "nox_cpu_percent" not in anonymous.text
    for header in ("Bearer nox_garbage", "Bearer ", "Basic YWRtaW46cGFzcw=="):
        response = await client.get("/metrics", headers={"Authorization": header})
        assert response.status_code == 401, header

    token = await client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert token.status_code == 200, token.text
    scraped = await client.get(
        "/metrics", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert re.search(r"^nox_cpu_percent \d+(\.\d+)?$", scraped.text, re.MULTILINE), scraped.text[:500]
    assert 'nox_ui_collector_up{collector="cpu"} 1.0' in scraped.text

    admin = accounts.users.get_by_username("admin")
    assert admin is not None
    read_only = accounts.auth.issue_token(admin, scopes=frozenset({"read"}))
    refused = await client.get("/metrics", headers={"Authorization": f"Bearer {read_only.token}"})
    assert refused.status_code == 403
    assert "metrics:read" in refused.text
    assert "nox_cpu_percent" not in refused.text

    scraper = accounts.auth.issue_token(admin, name="prometheus", scopes=frozenset({"metrics:read"}))
    ok = await client.get("/metrics", headers={"Authorization": f"Bearer {scraper.token}"})
    assert ok.status_code == 200 and "nox_mem_used_percent" in ok.text


async def test_public_metrics_need_no_token(app_user: User, accounts: Services) -> None:
    await wait_for_sample(accounts)
    assert (await app_user.http_client.get("/metrics")).status_code == 401
    accounts.config.metrics_public = True
    response = await app_user.http_client.get("/metrics")
    assert response.status_code == 200
    assert "nox_cpu_percent" in response.text
