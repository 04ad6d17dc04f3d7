"""(d) Requests per second at a fixed concurrency, from a process other than the server's.

`wrk` when it is installed (the harness apt-get installs Debian's `wrk` when it runs as root and
it is missing); otherwise this module is the load generator: `python -m bench.loadgen` runs N
keep-alive connections (aiohttp) in a loop for a fixed time and reports JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.util import Processes, log, percentile

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ensure_wrk() -> str | None:
    """Path of wrk, installing Debian's package when root and missing; None to fall back."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    log("wrk missing: apt-get install wrk")
    for attempt in range(2):
        try:
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode == 0:
            return shutil.which("wrk")
        if attempt == 0:  # the package lists may be missing or stale
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
    return None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * WRK_UNITS[match.group(2)] if match else float("nan")


def run_wrk(
    procs: Processes, wrk: str, url: str, headers: dict[str, str], connections: int, seconds: int
) -> dict[str, Any]:
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    proc = procs.start([*args, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=seconds + 60)
    finally:
        procs.stop(proc)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    errors = re.search(r"Socket errors:(.*)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if rps is None:
        raise RuntimeError(f"wrk gave no result:\n{output}")
    return {
        "tool": "wrk",
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
    }


def run_python(
    procs: Processes, url: str, headers: dict[str, str], connections: int, seconds: int
) -> dict[str, Any]:
    config = json.dumps({"url": url, "headers": headers, "connections": connections, "seconds": seconds})
    proc = procs.start(
        [sys.executable, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    try:
        output, _ = proc.communicate(config + "\n", timeout=seconds + 60)
    finally:
        procs.stop(proc)
    return dict(json.loads(output.strip().splitlines()[-1]))


def load(
    procs: Processes,
    wrk: str | None,
    url: str,
    headers: dict[str, str],
    connections: int,
    seconds: int,
) -> dict[str, Any]:
    if wrk:
        return run_wrk(procs, wrk, url, headers, connections, seconds)
    return run_python(procs, url, headers, connections, seconds)


async def _generate(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    counts = {"ok": 0, "non_2xx": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        counts["ok" if 200 <= response.status < 400 else "non_2xx"] += 1
                except (aiohttp.ClientError, TimeoutError):
                    counts["errors"] += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    done = counts["ok"] + counts["non_2xx"]
    return {
        "tool": "python-aiohttp",
        "rps": done / elapsed,
        "requests": done,
        "non_2xx": counts["non_2xx"],
        "socket_errors": str(counts["errors"]) if counts["errors"] else "",
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def main() -> None:
    config = json.loads(sys.stdin.readline())
    result = asyncio.run(
        _generate(config["url"], config["headers"], int(config["connections"]), float(config["seconds"]))
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
