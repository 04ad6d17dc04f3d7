"""(i) What a process costs before it does anything: `nox-ui users list` end to end (interpreter start,
imports, the core's build, one query), and the idle RSS of `nox-ui serve` against Glances in the same
run. `python -m bench --only startup` runs just these (about a minute)."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import glances as glances_mod
from bench.nox import NoxServer, nox_command
from bench.util import MIB, Processes, log

CLI_RUNS = 7
IDLE_AT = 20.0  # seconds after start, as the full run's (f) row


def cli_seconds(server: NoxServer, runs: int = CLI_RUNS) -> dict[str, Any]:
    """Wall time of `nox-ui users list` against a migrated data dir with one user. Byte-code caching is
    on, as for an installed package (one warm-up run writes it); the median of `runs` is reported."""
    env = server.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [*nox_command(), "users", "list"]
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=120)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True, timeout=120)
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": runs}


def idle_rss(procs: Processes, workdir: Path, server: NoxServer) -> tuple[int, int]:
    """RSS of `serve` and of Glances, each IDLE_AT seconds after its start, no client."""
    server.start()
    try:
        server.wait_since_start(IDLE_AT)
        nox = server.rss()
    finally:
        server.stop()
    glances_mod.ensure_glances()
    glances = glances_mod.GlancesServer(procs, workdir)
    glances.start()
    try:
        glances.wait_since_start(IDLE_AT)
        reference = glances.rss()
    finally:
        glances.stop()
    return nox, reference


def run(procs: Processes, workdir: Path, results: dict[str, Any]) -> None:
    server = NoxServer(procs, workdir, "nox-startup")
    server.create_user()
    cli = cli_seconds(server)
    results["cli"] = cli
    log(f"(i) nox-ui users list: median {cli['median_s']:.2f} s (min {cli['min_s']:.2f} s)")
    nox_rss, glances_rss = idle_rss(procs, workdir, server)
    results.setdefault("nox", {})["idle_rss"] = nox_rss
    results.setdefault("glances", {})["idle_rss"] = glances_rss
    log(f"(f) idle RSS: nox {nox_rss / MIB:.1f} MiB, glances {glances_rss / MIB:.1f} MiB")
