"""One `nox-ui serve` under test: its own data dir, a viewer account, session cookies, an API token."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.util import LOOPBACK, Processes, free_port, log, rss_bytes, wait_http
from nox_ui.roles import PANEL

USERNAME = "bench"


def nox_command() -> list[str]:
    """The `nox-ui` CLI through its documented twin `python -m nox_ui` (same code, same imports):
    its command line then does not contain "nox-ui", so a broad `pkill -f nox-ui` run elsewhere on
    the machine (e.g. another session cleaning up its own servers) cannot end ours mid-run."""
    return [sys.executable, "-m", "nox_ui"]


def clean_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOX_")}
    env.update(overrides)
    return env


class NoxServer:
    def __init__(self, procs: Processes, workdir: Path, name: str) -> None:
        self.procs = procs
        self.name = name
        self.data_dir = workdir / name
        self.log_file = workdir / f"{name}.log"
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen[Any] | None = None
        self.started_at = 0.0

    def env(self) -> dict[str, str]:
        return clean_env(NOX_DATA_DIR=str(self.data_dir), NOX_HOST=LOOPBACK, NOX_PORT=str(self.port))

    def create_user(self) -> None:
        """The CLI's `users create`, as an operator would run it (same data dir, same SQLite file)."""
        done = subprocess.run(
            [*nox_command(), "users", "create", USERNAME, "--role", "viewer", "--password-stdin"],
            input=self.password + "\n",
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nox-ui users create failed: {done.stderr.strip() or done.stdout.strip()}")

    def sessions(self, count: int) -> list[str]:
        """`count` session-cookie values from AuthService.start_session (what /auth/complete sets).

        Also lifts the API rate limit (600 requests/minute per address by default), which (d)'s load
        from one address would otherwise hit within a second; the limit check itself stays on."""
        from nox_ui.config import Settings
        from nox_ui.server import prepare

        services = prepare(Settings(data_dir=self.data_dir, database_url=None))
        try:
            services.settings.update(PANEL, {"api_rate_limit": "100000000/minute"})
            user = services.users.find(USERNAME)
            assert user is not None and user.id is not None
            return [
                services.auth.start_session(user.id, ip=LOOPBACK, user_agent="nox-bench")
                for _ in range(count)
            ]
        finally:
            services.close()

    def start(self) -> None:
        with self.log_file.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = self.procs.start(
                [*nox_command(), "serve"], env=self.env(), stdout=out, stderr=subprocess.STDOUT
            )
        wait_http(f"{self.base}/healthz", 90, self.proc)
        wait_http(f"{self.base}/readyz", 30, self.proc)  # 200 once the sampler has run
        log(f"{self.name}: nox-ui serve pid {self.proc.pid} ready on {self.base}")

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
                f"{self.name}: nox-ui serve (pid {self.proc.pid}) exited with {self.proc.returncode} "
                f"during the run, not stopped by the harness (see {self.log_file.name})"
            )

    def api_token(self) -> str:
        body = json.dumps({"username": USERNAME, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.load(response)["access_token"])

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, timeout=15)
            self.proc = None
