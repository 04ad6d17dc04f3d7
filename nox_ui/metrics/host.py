"""Static facts about the host, read once."""

from __future__ import annotations

import contextlib
import functools
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil


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


@functools.cache
def host_facts() -> HostFacts:
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
