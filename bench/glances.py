"""Glances, the reference: its own venv (bench/.venv-glances, made on first use), run as
`glances -w --disable-webui` (the REST API without the web UI) on 127.0.0.1 and a free port."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.util import LOOPBACK, Processes, free_port, log, rss_bytes, wait_http

VENV = Path(__file__).resolve().parent / ".venv-glances"
# The `web` extra brings FastAPI + uvicorn, which `glances -w` needs (the base package has no server).
REQUIREMENT = "glances[web]>=4,<5"
API = "/api/4/all"


def glances_bin() -> Path:
    return VENV / "bin" / "glances"


def ensure_glances() -> str:
    """Create the venv and install Glances once; return its version."""
    stamp = VENV / ".installed"
    if not stamp.exists():
        log(f"installing {REQUIREMENT} into {VENV} (first run only)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", REQUIREMENT], check=True, timeout=900)
        stamp.write_text(REQUIREMENT + "\n")
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('glances'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


class GlancesServer:
    def __init__(self, procs: Processes, workdir: Path) -> None:
        self.procs = procs
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.log_file = workdir / "glances.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        # Defaults otherwise: stats are refreshed on demand, at most once per --cached-time (1 s).
        # --disable-check-update: no PyPI look-up from the process under test.
        args = [
            str(glances_bin()),
            "-w",
            "--disable-webui",
            "--disable-check-update",
            "-B",
            LOOPBACK,
            "-p",
            str(self.port),
        ]
        with self.log_file.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = self.procs.start(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_http(f"{self.base}/api/4/status", 90, self.proc)
        log(f"glances pid {self.proc.pid} ready on {self.base}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def wait_since_start(self, seconds: float) -> None:
        delay = self.started_at + seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.check_alive()

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"glances (pid {self.proc.pid}) exited with {self.proc.returncode} during the run"
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, timeout=15)
            self.proc = None


class Poller:
    """GET url once per second (the whole body read), in a thread of the harness, until stopped."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, interval: float = 1.0) -> None:
        self.url = url
        self.headers = headers or {}
        self.interval = interval
        self.ok = 0
        self.failed = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                request = urllib.request.Request(self.url, headers=self.headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.bytes += len(response.read())
                    self.ok += 1
            except OSError:
                self.failed += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
