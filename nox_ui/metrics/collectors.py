"""psutil collectors. Each owns its metric names, units and descriptions (see METRICS), and returns
`{series_id: value}` for one sample. Rates are computed from counter deltas between samples."""

from __future__ import annotations

import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import psutil

from nox_ui.metrics.series import MetricSpec, series_id

Values = dict[str, float]

# File systems that hold no user data: kernel views, RAM disks, container plumbing, snap images.
PSEUDO_FS = frozenset(
    [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
        "fuse.gvfsd-fuse",
        "fuse.portal",
        "fuse.snapfuse",
        "nfsd",
        "iso9660",
    ]
)
_VIRTUAL_DISK = re.compile(r"^(loop|ram|zram|fd|sr|dm-)\d*")


class Collector(ABC):
    """One group of metrics. `collect` may raise; the sampler then marks it degraded."""

    name: ClassVar[str] = ""
    specs: ClassVar[tuple[MetricSpec, ...]] = ()

    @abstractmethod
    def collect(self, now: float) -> Values:
        """Read the source once and return {series_id: value}."""


def _spec(collector: str, name: str, unit: str, description: str, *labels: str) -> MetricSpec:
    return MetricSpec(name=name, unit=unit, description=description, labels=labels, collector=collector)


class CpuCollector(Collector):
    name = "cpu"
    specs = (
        _spec("cpu", "cpu.percent", "percent", "CPU busy, all cores"),
        _spec("cpu", "cpu.core.percent", "percent", "CPU busy per core", "core"),
        _spec("cpu", "cpu.user_percent", "percent", "CPU time in user space"),
        _spec("cpu", "cpu.system_percent", "percent", "CPU time in the kernel"),
        _spec("cpu", "cpu.iowait_percent", "percent", "CPU time waiting for I/O"),
        _spec("cpu", "cpu.steal_percent", "percent", "CPU time taken by the hypervisor"),
        _spec("cpu", "load.1", "load", "load average, 1 minute"),
        _spec("cpu", "load.5", "load", "load average, 5 minutes"),
        _spec("cpu", "load.15", "load", "load average, 15 minutes"),
    )

    def __init__(self) -> None:
        # One psutil call per sample; totals and per-core numbers are both derived from it.
        self._previous = psutil.cpu_times(percpu=True)
        fields = self._previous[0]._fields
        at = {name: fields.index(name) if name in fields else None for name in _CPU_FIELDS}
        self._at = at
        self._idle = fields.index("idle")
        self._iowait = at["iowait"]
        # guest time is already counted in user time on Linux
        self._skip = [i for i in (at["guest"], at["guest_nice"]) if i is not None]
        self._core_ids: list[str] = []

    def collect(self, now: float) -> Values:
        current = psutil.cpu_times(percpu=True)
        at = self._at
        if len(self._core_ids) != len(current):
            self._core_ids = [series_id("cpu.core.percent", {"core": str(i)}) for i in range(len(current))]
        values: Values = {}
        total_sum = idle_sum = 0.0
        parts = dict.fromkeys(("user", "nice", "system", "iowait", "steal"), 0.0)
        for sid, before, after in zip(self._core_ids, self._previous, current, strict=False):
            delta = [a - b for a, b in zip(after, before, strict=False)]
            total = sum(delta) - sum(delta[i] for i in self._skip)
            idle = delta[self._idle] + (delta[self._iowait] if self._iowait is not None else 0.0)
            values[sid] = _percent(total - idle, total)
            total_sum += total
            idle_sum += idle
            for name in parts:
                index = at[name]
                if index is not None:
                    parts[name] += delta[index]
        self._previous = current
        values["cpu.percent"] = _percent(total_sum - idle_sum, total_sum)
        values["cpu.user_percent"] = _percent(parts["user"] + parts["nice"], total_sum)
        values["cpu.system_percent"] = _percent(parts["system"], total_sum)
        values["cpu.iowait_percent"] = _percent(parts["iowait"], total_sum)
        values["cpu.steal_percent"] = _percent(parts["steal"], total_sum)
        values["load.1"], values["load.5"], values["load.15"] = os.getloadavg()
        return values


_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "steal", "guest", "guest_nice")


def _percent(part: float, whole: float) -> float:
    return max(0.0, min(100.0, part / whole * 100.0)) if whole > 0 else 0.0


class MemoryCollector(Collector):
    name = "memory"
    specs = (
        _spec("memory", "mem.total_bytes", "bytes", "physical memory"),
        _spec("memory", "mem.used_bytes", "bytes", "memory in use (total minus available)"),
        _spec("memory", "mem.available_bytes", "bytes", "memory available to new programs"),
        _spec("memory", "mem.cached_bytes", "bytes", "page cache and buffers"),
        _spec("memory", "mem.used_percent", "percent", "memory in use"),
        _spec("memory", "swap.total_bytes", "bytes", "swap space"),
        _spec("memory", "swap.used_bytes", "bytes", "swap in use"),
        _spec("memory", "swap.used_percent", "percent", "swap in use"),
    )

    def collect(self, now: float) -> Values:
        vm = psutil.virtual_memory()
        swap = psutil.swap_memory()
        used = vm.total - vm.available
        return {
            "mem.total_bytes": float(vm.total),
            "mem.used_bytes": float(used),
            "mem.available_bytes": float(vm.available),
            "mem.cached_bytes": float(getattr(vm, "cached", 0) + getattr(vm, "buffers", 0)),
            "mem.used_percent": _percent(used, vm.total),
            "swap.total_bytes": float(swap.total),
            "swap.used_bytes": float(swap.used),
            "swap.used_percent": _percent(swap.used, swap.total),
        }


class DiskUsageCollector(Collector):
    name = "disk"
    specs = (
        _spec("disk", "disk.total_bytes", "bytes", "file system size", "mount"),
        _spec("disk", "disk.used_bytes", "bytes", "file system space used", "mount"),
        _spec("disk", "disk.used_percent", "percent", "file system space used", "mount"),
    )
    REFRESH_MOUNTS_EVERY = 60.0

    def __init__(self) -> None:
        self._mounts: list[tuple[str, str, str, str]] = []  # mount point and its three series ids
        self._mounts_at = -1e9

    def mounts(self, now: float) -> list[str]:
        if now - self._mounts_at > self.REFRESH_MOUNTS_EVERY:
            seen: set[str] = set()
            mounts = []
            for part in psutil.disk_partitions(all=False):
                if (
                    part.fstype in PSEUDO_FS
                    or part.mountpoint in seen
                    or part.mountpoint.startswith("/snap/")
                ):
                    continue
                seen.add(part.mountpoint)
                labels = {"mount": part.mountpoint}
                mounts.append(
                    (
                        part.mountpoint,
                        series_id("disk.total_bytes", labels),
                        series_id("disk.used_bytes", labels),
                        series_id("disk.used_percent", labels),
                    )
                )
            self._mounts, self._mounts_at = mounts, now
        return [mount for mount, *_ in self._mounts]

    def collect(self, now: float) -> Values:
        values: Values = {}
        self.mounts(now)
        for mount, total_id, used_id, percent_id in self._mounts:
            try:
                usage = psutil.disk_usage(mount)
            except OSError:
                continue  # unmounted since the list was read; the next refresh drops it
            values[total_id] = float(usage.total)
            values[used_id] = float(usage.used)
            values[percent_id] = usage.percent
        return values


class _RateCollector(Collector):
    """Turns monotonic counters into per-second rates between two samples."""

    def __init__(self) -> None:
        self._previous: dict[str, tuple[float, Any]] = {}
        self._ids: dict[str, list[tuple[str, str]]] = {}  # key -> [(series id, counter field)]

    def rates(
        self, now: float, key: str, counters: Any, fields: dict[str, str], labels: dict[str, str]
    ) -> Values:
        values: Values = {}
        before = self._previous.get(key)
        self._previous[key] = (now, counters)
        if before is None or now <= before[0]:
            return values
        ids = self._ids.get(key)
        if ids is None:
            ids = self._ids[key] = [(series_id(metric, labels), field) for metric, field in fields.items()]
        elapsed = now - before[0]
        previous = before[1]
        for sid, field in ids:
            # max(0, ...): counters restart from zero when a device resets
            values[sid] = max(0.0, (getattr(counters, field) - getattr(previous, field)) / elapsed)
        return values


class DiskIOCollector(_RateCollector):
    name = "diskio"
    specs = (
        _spec("diskio", "disk.read_bytes_per_s", "bytes_per_second", "bytes read per second", "disk"),
        _spec("diskio", "disk.write_bytes_per_s", "bytes_per_second", "bytes written per second", "disk"),
        _spec("diskio", "disk.read_ops_per_s", "per_second", "read operations per second", "disk"),
        _spec("diskio", "disk.write_ops_per_s", "per_second", "write operations per second", "disk"),
    )
    FIELDS: ClassVar[dict[str, str]] = {
        "disk.read_bytes_per_s": "read_bytes",
        "disk.write_bytes_per_s": "write_bytes",
        "disk.read_ops_per_s": "read_count",
        "disk.write_ops_per_s": "write_count",
    }

    def __init__(self, is_whole_disk: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self._is_whole_disk = is_whole_disk or _is_whole_disk
        self._known: dict[str, bool] = {}

    def collect(self, now: float) -> Values:
        values: Values = {}
        for disk, counters in (psutil.disk_io_counters(perdisk=True) or {}).items():
            keep = self._known.get(disk)
            if keep is None:
                keep = self._known[disk] = not _VIRTUAL_DISK.match(disk) and self._is_whole_disk(disk)
            if keep:
                values.update(self.rates(now, disk, counters, self.FIELDS, {"disk": disk}))
        return values


def _is_whole_disk(name: str) -> bool:
    """Partitions would count their I/O twice; /sys/block lists whole disks only."""
    block = Path("/sys/block")
    return not block.is_dir() or (block / name).exists()


class NetworkCollector(_RateCollector):
    name = "network"
    specs = (
        _spec("network", "net.rx_bytes_per_s", "bytes_per_second", "bytes received per second", "iface"),
        _spec("network", "net.tx_bytes_per_s", "bytes_per_second", "bytes sent per second", "iface"),
        _spec("network", "net.rx_errors_per_s", "per_second", "receive errors per second", "iface"),
        _spec("network", "net.tx_errors_per_s", "per_second", "send errors per second", "iface"),
        _spec("network", "net.rx_drops_per_s", "per_second", "received packets dropped per second", "iface"),
        _spec("network", "net.tx_drops_per_s", "per_second", "outgoing packets dropped per second", "iface"),
    )
    FIELDS: ClassVar[dict[str, str]] = {
        "net.rx_bytes_per_s": "bytes_recv",
        "net.tx_bytes_per_s": "bytes_sent",
        "net.rx_errors_per_s": "errin",
        "net.tx_errors_per_s": "errout",
        "net.rx_drops_per_s": "dropin",
        "net.tx_drops_per_s": "dropout",
    }

    def collect(self, now: float) -> Values:
        values: Values = {}
        for iface, counters in psutil.net_io_counters(pernic=True).items():
            values.update(self.rates(now, iface, counters, self.FIELDS, {"iface": iface}))
        return values


class SensorsCollector(Collector):
    name = "sensors"
    specs = (
        _spec("sensors", "sensor.temperature_celsius", "celsius", "temperature", "chip", "sensor"),
        _spec("sensors", "sensor.fan_rpm", "rpm", "fan speed", "chip", "sensor"),
    )
    RECHECK_ABSENT_EVERY = 300.0

    def __init__(self) -> None:
        self._absent_since: float | None = None

    def collect(self, now: float) -> Values:
        # Most VMs and containers have no sensors: then look again only every few minutes.
        if self._absent_since is not None and now - self._absent_since < self.RECHECK_ABSENT_EVERY:
            return {}
        values: Values = {}
        reading = getattr(psutil, "sensors_temperatures", None)
        for chip, entries in (reading() if reading else {}).items():
            for index, entry in enumerate(entries):
                labels = {"chip": chip, "sensor": entry.label or str(index)}
                values[series_id("sensor.temperature_celsius", labels)] = float(entry.current)
        fans = getattr(psutil, "sensors_fans", None)
        for chip, entries in (fans() if fans else {}).items():
            for index, entry in enumerate(entries):
                labels = {"chip": chip, "sensor": entry.label or str(index)}
                values[series_id("sensor.fan_rpm", labels)] = float(entry.current)
        self._absent_since = None if values else now
        return values


class SystemCollector(Collector):
    name = "system"
    specs = (
        _spec("system", "system.uptime_seconds", "seconds", "time since boot"),
        _spec("system", "system.processes", "count", "number of processes"),
    )

    def __init__(self) -> None:
        self._boot = psutil.boot_time()

    def collect(self, now: float) -> Values:
        return {
            "system.uptime_seconds": time.time() - self._boot,
            "system.processes": float(len(psutil.pids())),
        }


def default_collectors() -> list[Collector]:
    return [
        CpuCollector(),
        MemoryCollector(),
        DiskUsageCollector(),
        DiskIOCollector(),
        NetworkCollector(),
        SensorsCollector(),
        SystemCollector(),
    ]
