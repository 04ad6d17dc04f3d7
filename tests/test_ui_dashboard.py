"""The live dashboard through NiceGUI's simulated user, with the real sampler running on the loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from nicegui import ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.components.live import DashboardFeed, View
from nox_ui.components.signals import ui_event
from nox_ui.metrics.collectors import DiskUsageCollector
from tests.conftest import VIEWER_PASSWORD, sign_in


def _text(user: User, marker: str) -> str:
    return next(iter(user.find(marker=marker).elements)).text  # type: ignore[attr-defined]


async def test_dashboard_values_change_while_the_page_is_open(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_see(marker="cpu-value", retries=30)
    # Count the updates this page is sent rather than wait for a value to differ: on a saturated
    # machine the CPU card may read "100 %" the whole time, and that is a correct value.
    delivered: list[View] = []
    _feed(accounts).updated.subscribe(lambda changed, _points: delivered.append(changed))
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 4\nwhile time.time() < end: pass"]
    )
    try:
        for _ in range(600):  # one update per sample: the sampler keeps running while the page is open
            if len(delivered) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        burner.kill()
        burner.wait()
    assert len(delivered) >= 3
    cpu, mem = _text(app_user, "cpu-value"), _text(app_user, "mem-detail")
    assert cpu.endswith(" %")
    assert "GiB" in mem or "MiB" in mem
    # What an update changed is what the page shows now.
    shown = {key: value for changes in delivered for key, value in changes.items()}
    if "cpu.value" in shown:
        assert shown["cpu.value"] == cpu


async def test_a_failing_collector_degrades_its_card_only(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_see(marker="cpu-value", retries=30)
    await app_user.should_not_see(marker="degraded-disk")
    disk = next(c for c in accounts.metrics.sampler.collectors if isinstance(c, DiskUsageCollector))

    def broken(now: float) -> dict[str, float]:
        raise OSError("statvfs failed: device gone")

    original = disk.collect
    disk.collect = broken  # type: ignore[method-assign]
    try:
        await app_user.should_see(marker="degraded-disk", retries=40)
        assert accounts.metrics.sampler.degraded() == {"disk": "OSError: statvfs failed: device gone"}
        await app_user.should_not_see(marker="degraded-cpu")
        await asyncio.sleep(1.0)
        # the other cards keep their live values
        assert _text(app_user, "mem-detail") != "—"
        assert _text(app_user, "cpu-value").endswith(" %")
    finally:
        disk.collect = original  # type: ignore[method-assign]
    await app_user.should_not_see(marker="degraded-disk", retries=40)
    assert accounts.metrics.sampler.degraded() == {}


async def test_dashboard_shows_host_facts_and_charts(app_user: User) -> None:
    import socket

    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_see(socket.gethostname())
    charts = app_user.find(ui.echart).elements
    assert len(charts) == 4


@pytest.mark.parametrize("path", ["/history", "/processes"])
async def test_viewer_opens_history_and_processes(app_user: User, path: str) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path=path)
    await app_user.should_see("Processes" if path == "/processes" else "Series", retries=20)


def _feed(services: Services) -> DashboardFeed:
    """The dashboard's per-process view model: the one subscriber of the metrics bus."""
    feeds = [getattr(c.func, "__self__", None) for c in ui_event(services.metrics.bus).callbacks]
    found = [f for f in feeds if isinstance(f, DashboardFeed)]
    assert len(found) == 1
    return found[0]


async def test_closed_tab_stops_receiving_updates(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_see(marker="cpu-value", retries=30)
    assert _feed(accounts).watchers == 1
    assert app_user.client is not None
    app_user.client.delete()
    for _ in range(600):  # a bound on a hang only
        if _feed(accounts).watchers == 0:
            break
        await asyncio.sleep(0.05)
    assert _feed(accounts).watchers == 0


async def test_sensors_card_appears_when_the_host_has_sensors(app_user: User, accounts: Services) -> None:
    """This VM has no sensors; a stand-in for the hardware reports one temperature and one fan."""
    from nox_ui.metrics.collectors import SensorsCollector
    from nox_ui.metrics.series import series_id

    class BoardSensors(SensorsCollector):
        def collect(self, now: float) -> dict[str, float]:
            return {
                series_id("sensor.temperature_celsius", {"chip": "acpitz", "sensor": "cpu"}): 92.0,
                series_id("sensor.fan_rpm", {"chip": "dell_smm", "sensor": "fan1"}): 3100.0,
            }

    collectors = accounts.metrics.sampler.collectors
    collectors[:] = [BoardSensors() if isinstance(c, SensorsCollector) else c for c in collectors]
    fan = series_id("sensor.fan_rpm", {"chip": "dell_smm", "sensor": "fan1"})
    for _ in range(600):  # a sample with sensors exists before the page is built (a bound on a hang only)
        if (last := accounts.metrics.last) is not None and fan in last.values:
            break
        await asyncio.sleep(0.05)
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    await app_user.should_see("Sensors", retries=30)
    await app_user.should_see("92 °C", retries=30)
    await app_user.should_see("3100 rpm")
