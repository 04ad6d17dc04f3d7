"""The sampler and the psutil collectors on this very machine: values move, names are stable, pseudo file
systems stay out, and one broken collector is reported without silencing the others."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import ClassVar

import psutil
import pytest
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.errors import Invalid
from nox_ui.metrics.collectors import Collector, DiskUsageCollector, Values, default_collectors
from nox_ui.metrics.sampler import CollectorHealth, Sampler
from nox_ui.metrics.series import MetricSpec, parse_series, series_id, series_name

# Written out here rather than imported, so that dropping one from the collector's list fails a test.
PSEUDO = {
    "autofs",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
}
UNITS = {"percent", "bytes", "bytes_per_second", "per_second", "seconds", "celsius", "rpm", "count", "load"}


def burn_cpu(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def loopback_traffic(size: int) -> None:
    """Push `size` bytes through 127.0.0.1 so the lo counters must move."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        received = 0

        def drain() -> None:
            nonlocal received
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received += len(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"x" * size)
        reader.join(5)
        assert received == size


def root_fstype() -> str | None:
    fstype = None
    for part in psutil.disk_partitions(all=True):
        if part.mountpoint == "/":
            fstype = part.fstype  # the last mount on / is the visible one
    return fstype


class Flaky(Collector):
    """Fails while `failing` is set, like a sensor bus that comes and goes."""

    name = "flaky"
    specs: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("flaky.value", "count", "a test value", (), "flaky"),
    )

    def __init__(self) -> None:
        self.failing = False

    def collect(self, now: float) -> Values:
        if self.failing:
            raise RuntimeError("sensor bus gone")
        return {"flaky.value": 7.0}


def test_values_move_between_samples_and_series_are_named_and_described() -> None:
    sampler = Sampler(default_collectors())
    first = sampler.sample()
    time.sleep(0.2)
    second = sampler.sample()
    loopback_traffic(2_000_000)
    burn_cpu(0.4)
    third = sampler.sample()
    samples = [first, second, third]

    assert [s.ts for s in samples] == sorted(s.ts for s in samples)
    assert sampler.samples_taken == 3
    assert sampler.last is third
    assert len({s.values["cpu.percent"] for s in samples}) > 1, [s.values["cpu.percent"] for s in samples]
    uptimes = [s.values["system.uptime_seconds"] for s in samples]
    assert uptimes[0] < uptimes[2]
    assert uptimes[2] == pytest.approx(time.time() - psutil.boot_time(), abs=5)

    # One core at least was busy for the whole interval before the third sample.
    cores = psutil.cpu_count() or 1
    assert third.values["cpu.percent"] >= 50 / cores
    per_core = [third.values[series_id("cpu.core.percent", {"core": str(i)})] for i in range(cores)]
    assert sum(per_core) >= 50
    assert all(0 <= v <= 100 for s in samples for k, v in s.values.items() if k.startswith("cpu."))

    # Rates need two readings: none in the first sample, then the loopback traffic shows up.
    lo_rx = series_id("net.rx_bytes_per_s", {"iface": "lo"})
    assert lo_rx == 'net.rx_bytes_per_s{iface="lo"}'
    assert not any(series_name(sid).startswith("net.") for sid in first.values)
    assert lo_rx in second.values
    assert third.values[lo_rx] >= 2_000_000 / (third.ts - second.ts) * 0.9

    assert 'cpu.core.percent{core="0"}' in third.values
    # Every reported disk matches its filesystem ("/" among them unless the root is an overlay or the like).
    disks = {
        parse_series(sid)[1]["mount"]: v
        for sid, v in third.values.items()
        if series_name(sid) == "disk.used_percent"
    }
    assert root_fstype() in PSEUDO or "/" in disks, disks
    for mount, used in disks.items():
        assert used == pytest.approx(psutil.disk_usage(mount).percent, abs=1), mount
    assert 0 < third.values["mem.used_percent"] <= 100
    assert third.values["mem.total_bytes"] == psutil.virtual_memory().total
    assert third.values["system.processes"] > 1

    specs = {spec.name: spec for spec in sampler.specs}
    for sid in set(first.values) | set(second.values) | set(third.values):
        name, labels = parse_series(sid)
        spec = specs.get(name)
        assert spec is not None, f"{sid} has no spec"
        assert spec.unit in UNITS, sid
        assert spec.description, sid
        assert set(labels) == set(spec.labels), sid
        assert series_id(name, labels) == sid  # emitted ids are already canonical
    if not disks:  # said, not passed quietly: everything above held
        pytest.skip("no real disk mount is reported on this machine: disk usage accuracy NOT checked")


def test_pseudo_file_systems_are_never_reported_as_disks(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = psutil.disk_partitions(all=True)
    pseudo_mounts = {p.mountpoint for p in everything if p.fstype in PSEUDO}
    real_mounts = {p.mountpoint for p in everything if p.fstype not in PSEUDO}

    reported = {
        parse_series(sid)[1]["mount"] for sid in DiskUsageCollector().collect(time.time()) if "mount" in sid
    }
    assert not reported & (pseudo_mounts - real_mounts)

    # Even when psutil hands over the full table (kernel views, RAM disks, cgroups) none of them leaks.
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: everything)
    asked: list[str] = []
    real_usage = psutil.disk_usage

    def usage(path: str):
        asked.append(path)
        return real_usage(path)

    monkeypatch.setattr(psutil, "disk_usage", usage)
    values = DiskUsageCollector().collect(time.time())
    mounts = {parse_series(sid)[1]["mount"] for sid in values}
    assert mounts, "no disk at all"
    for part in everything:
        if part.fstype in PSEUDO and part.mountpoint not in real_mounts:
            assert part.mountpoint not in mounts, part
            assert part.mountpoint not in asked, part  # not even stat'ed
    assert len(asked) == len(set(asked))  # a mount listed twice is read once
    if root_fstype() not in PSEUDO:
        assert "/" in mounts


def test_a_failing_collector_is_degraded_while_the_others_go_on_and_it_recovers() -> None:
    flaky = Flaky()
    sampler = Sampler([*default_collectors(), flaky])
    assert sampler.sample().values["flaky.value"] == 7.0
    assert sampler.degraded() == {}

    flaky.failing = True
    for _ in range(3):
        sample = sampler.sample()
        assert "flaky.value" not in sample.values
        assert "cpu.percent" in sample.values and "mem.used_percent" in sample.values
    assert sampler.degraded() == {"flaky": "RuntimeError: sensor bus gone"}
    assert sampler.health["flaky"].failures == 3
    assert all(state.ok for name, state in sampler.health.items() if name != "flaky")

    flaky.failing = False
    assert sampler.sample().values["flaky.value"] == 7.0
    assert sampler.degraded() == {}
    assert sampler.health["flaky"].failures == 0
    assert sampler.health["flaky"].errors_total == 3  # the history stays for /metrics


async def test_readyz_names_a_degraded_collector_but_stays_ready(app_user: User, accounts: Services) -> None:
    flaky = Flaky()
    sampler = accounts.metrics.sampler
    sampler.collectors.append(flaky)
    sampler.health[flaky.name] = CollectorHealth()
    client = app_user.http_client

    accounts.metrics.tick()
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["sampler"] == "ok"
    assert ready.json()["degraded_collectors"] == {}

    flaky.failing = True
    accounts.metrics.tick()
    degraded = await client.get("/readyz")
    assert degraded.status_code == 200  # the other collectors still work: not a reason to pull the panel
    assert degraded.json()["status"] == "ready"
    assert degraded.json()["degraded_collectors"] == {"flaky": "RuntimeError: sensor bus gone"}

    flaky.failing = False
    accounts.metrics.tick()
    assert (await client.get("/readyz")).json()["degraded_collectors"] == {}


async def test_readyz_is_503_when_no_sample_is_recent(app_user: User, accounts: Services) -> None:
    await accounts.metrics.stop()
    accounts.metrics.sampler.last = None
    response = await app_user.http_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert response.json()["checks"]["sampler"].startswith("error")


@pytest.mark.parametrize(
    "labels",
    [
        {"mount": "/"},
        {"mount": '/mnt/my "disk"'},
        {"mount": "C:\\data\\"},
        {"chip": "coretemp-isa-0000", "sensor": "Package id 0"},
        {"iface": "a,b}c=d", "z": ""},
        {"mount": "/mnt/two\nlines"},  # Linux allows it; one such mount must not break /metrics
    ],
)
def test_series_ids_round_trip(labels: dict[str, str]) -> None:
    sid = series_id("disk.used_percent", labels)
    assert parse_series(sid) == ("disk.used_percent", labels)
    assert series_name(sid) == "disk.used_percent"


def test_series_ids_are_canonical() -> None:
    assert series_id("cpu.percent") == "cpu.percent"
    assert series_id("x.y", {"b": "2", "a": "1"}) == 'x.y{a="1",b="2"}'
    assert series_id("disk.used_percent", {"mount": 'a"b\\c'}) == 'disk.used_percent{mount="a\\"b\\\\c"}'
    name, labels = parse_series(' sensor.fan_rpm { sensor = "2" , chip = "it87" } ')
    assert series_id(name, labels) == 'sensor.fan_rpm{chip="it87",sensor="2"}'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "CPU.percent",
        "cpu percent",
        "1cpu",
        "cpu..percent",
        "cpu.percent{mount=}",
        'cpu.percent{mount="/"',
        'cpu.percent{mount="/" core="1"}',
        'cpu.percent{="x"}',
        "cpu.percent{mount='/'}",
        'cpu.percent{mount="unterminated}',
    ],
)
def test_invalid_selectors_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_series(text)
    assert "invalid" in caught.value.message


async def test_readyz_says_which_check_failed_without_the_database_error_text(
    app_user: User, accounts: Services, tmp_path: Path
) -> None:
    """An anonymous caller learns that the database does not answer, not its path or driver message."""
    from nox_ui.db import make_engine

    accounts.metrics.tick()
    working = accounts.db.engine
    missing = tmp_path / "no such directory" / "nox.db"
    accounts.db.engine = make_engine(f"sqlite:///{missing}")
    try:
        response = await app_user.http_client.get("/readyz")
    finally:
        accounts.db.engine.dispose()
        accounts.db.engine = working
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == (
        "error: the database does not answer (details in the server log)"
    )
    assert "no such directory" not in response.text
    assert "OperationalError" not in response.text
