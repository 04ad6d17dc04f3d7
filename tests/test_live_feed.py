"""The dashboard's view model: what a card shows for a given sample (pure: no page, no clock)."""

from __future__ import annotations

from pathlib import Path

from nox_ui.components.live import DashboardFeed
from nox_ui.config import Settings
from nox_ui.metrics.sampler import Sample
from nox_ui.server import prepare


def _feed(tmp_path: Path) -> DashboardFeed:
    services = prepare(Settings(data_dir=tmp_path / "data"))
    return DashboardFeed(services.metrics, services.cache)


def test_cards_show_human_units_and_threshold_levels(tmp_path: Path) -> None:
    feed = _feed(tmp_path)
    sample = Sample(
        ts=1_800_000_000.0,
        duration=0.001,
        values={
            "cpu.percent": 93.4,
            "cpu.user_percent": 80.0,
            "cpu.system_percent": 13.4,
            'cpu.core.percent{core="0"}': 91.0,
            "mem.used_percent": 50.0,
            "mem.used_bytes": 3 * 2**30,
            "mem.total_bytes": 6 * 2**30,
            "mem.cached_bytes": 512 * 2**20,
            "swap.total_bytes": 0.0,
            "swap.used_bytes": 0.0,
            "swap.used_percent": 0.0,
            'disk.used_percent{mount="/"}': 85.0,
            'disk.used_bytes{mount="/"}': 85 * 2**30,
            'disk.total_bytes{mount="/"}': 100 * 2**30,
            'net.rx_bytes_per_s{iface="eth0"}': 1536.0,
            'net.tx_bytes_per_s{iface="eth0"}': 3 * 2**20,
            'net.rx_bytes_per_s{iface="lo"}': 99.0,
            'net.tx_bytes_per_s{iface="lo"}': 99.0,
            'sensor.temperature_celsius{chip="coretemp",sensor="Package id 0"}': 81.0,
            'sensor.fan_rpm{chip="thinkpad",sensor="fan1"}': 2400.0,
            "system.uptime_seconds": 3 * 86400 + 5 * 3600,
        },
    )
    view = feed.build_view(sample)
    assert view["cpu.value"] == "93 %" and view["cpu.level"] == "critical"
    assert view["core.0.label"] == "91 %" and view["core.0.bar"] == 0.91
    assert view["mem.detail"] == "3.0 GiB of 6.0 GiB · cache 512.0 MiB" and view["mem.level"] == "ok"
    assert view["swap.value"] == "off"
    assert view["disk./.value"] == "85 %" and view["disk./.level"] == "warning"
    assert view["disk./.detail"] == "85.0 GiB of 100.0 GiB"
    assert view["net.eth0.detail"] == "↓ 1.5 KiB/s  ↑ 3.0 MiB/s"
    assert "net.lo.detail" not in view  # loopback is not the host's traffic
    assert view["sensor.coretemp Package id 0.value"] == "81 °C"
    assert view["sensor.coretemp Package id 0.level"] == "warning"
    assert view["sensor.thinkpad fan1.value"] == "2400 rpm"
    assert view["system.uptime"] == "3 d 5 h"


def test_chart_points_sum_interfaces_but_loopback(tmp_path: Path) -> None:
    sample = Sample(
        ts=1_800_000_000.5,
        duration=0.001,
        values={
            'net.rx_bytes_per_s{iface="eth0"}': 100.0,
            'net.rx_bytes_per_s{iface="eth1"}': 50.0,
            'net.rx_bytes_per_s{iface="lo"}': 1e9,
            'net.tx_bytes_per_s{iface="eth0"}': 10.0,
            'disk.read_bytes_per_s{disk="sda"}': 7.0,
            'disk.write_bytes_per_s{disk="sda"}': 3.0,
        },
    )
    points = _feed(tmp_path).chart_points(sample)
    assert points["net"] == [1_800_000_000_500, 150.0, 10.0]
    assert points["disk"] == [1_800_000_000_500, 7.0, 3.0]
    assert "cpu" not in points  # no CPU reading, no made-up point
