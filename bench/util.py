"""Shared pieces: started processes (and ending them), CPU/RSS readings, free ports, percentiles,
and the line protocol the harness speaks with its helper processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# -- processes -------------------------------------------------------------------------------------


class Processes:
    """Every process the harness starts, in its own session (process group), ended by id at the end."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []
        self._lock = threading.Lock()

    def start(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc: subprocess.Popen[Any] = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        with self._lock:
            self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
        """SIGTERM to the process group we created for it, then SIGKILL if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Anything left in that group (e.g. a browser's helpers) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, timeout=5)


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its live children (all threads included)."""
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores; idle and iowait excluded)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class CpuWindow:
    """Δ(user+system CPU time) / Δwall of one process tree, in percent of one core; also how busy
    the whole machine was meanwhile (percent of one core, up to 100 x cores), to spot outside load."""

    pid: int
    cpu0: float = 0.0
    wall0: float = 0.0
    busy0: float = 0.0
    percent: float = float("nan")
    machine_percent: float = float("nan")
    seconds: float = 0.0

    def __enter__(self) -> CpuWindow:
        self.cpu0, self.busy0, self.wall0 = cpu_seconds(self.pid), machine_busy_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu1, busy1, wall1 = cpu_seconds(self.pid), machine_busy_seconds(), time.monotonic()
        self.seconds = wall1 - self.wall0
        if self.seconds > 0:
            self.percent = (cpu1 - self.cpu0) / self.seconds * 100.0
            self.machine_percent = (busy1 - self.busy0) / self.seconds * 100.0


def measure_cpu(pid: int, seconds: float) -> float:
    with CpuWindow(pid) as window:
        time.sleep(seconds)
    return window.percent


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s ({last})")


# -- helper processes ------------------------------------------------------------------------------


class Child:
    """A harness helper (`python -m bench.<module>`): JSON lines both ways over stdin/stdout."""

    def __init__(self, procs: Processes, module: str, config: dict[str, Any], log_file: Path) -> None:
        self.procs = procs
        self._log = log_file.open("a", encoding="utf-8")
        self.proc = procs.start(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.send(config)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"helper {self.proc.args!r} sent no {event!r} within {timeout:.0f} s")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"helper exited ({self.proc.wait()}) before sending {event!r}")
            with contextlib.suppress(json.JSONDecodeError):
                message = json.loads(line)
                if message.get("event") == "error":
                    raise RuntimeError(f"helper failed: {message.get('message')}")
                if message.get("event") == event:
                    return dict(message)

    def close(self) -> None:
        self.procs.stop(self.proc, timeout=15)
        self._log.close()


def child_io() -> tuple[dict[str, Any], Any]:
    """For a helper: its config (the first stdin line) and a function that writes one JSON line."""
    config = json.loads(sys.stdin.readline())

    def emit(event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    return config, emit


def run_child(main_async: Callable[[dict[str, Any], Any], Coroutine[Any, Any, None]]) -> None:
    """A helper's entry point: `main_async(config, emit)`, a crash reported as one `error` line."""
    config, emit = child_io()
    try:
        asyncio.run(main_async(config, emit))
    except Exception as exc:
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc
