"""Static facts about the host: read at most once an hour, whoever asks (the cache's "host" namespace)."""

from __future__ import annotations

import contextlib
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

from nox_ui.cache import Cache

HOST_FACTS = ("host", "facts")  # cache namespace (memory: a few strings) and key
FACTS_TTL = 3600.0  # a renamed host or resized memory shows within the hour


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    os: str
    kernel: str
    architecture: str
    cpu_model: str
    cores: int
    threads: int
    memory_bytes: int


def host_facts(cache: Cache) -> HostFacts:
    """The facts as last read, or read now (the dashboard asks on every sample of every viewer)."""
    namespace, key = HOST_FACTS
    return cache.get_or_compute(namespace, key, read_host_facts, ttl=FACTS_TTL)


def read_host_facts() -> HostFacts:
    """Read the facts from the OS (/etc/os-release, /proc/cpuinfo, psutil): a millisecond or so."""
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        os_name = f"{platform.system()} {platform.version()}"
    return HostFacts(
        hostname=socket.gethostname(),
        os=os_name,
        kernel=platform.release(),
        architecture=platform.machine(),
        cpu_model=_cpu_model(),
        cores=psutil.cpu_count(logical=False) or psutil.cpu_count() or 1,
        threads=psutil.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"
