"""(h) Load and soak: one `nox-ui serve` for minutes under dashboards that connect and disconnect
without pause plus a steady stream of authenticated API reads; errors, latency, and whether the
server's RSS comes back down once the load is gone (a leak would keep it up).

Harness side: `run(procs, workdir, options)` (from `python -m bench`, or alone with
`python -m bench --only soak`). The load itself runs in a helper process (`python -m bench.soak`,
JSON lines as bench.simclient): config on stdin, "ending" at the deadline while its clients are
still live, then "stop" -> "result".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.nox import NoxServer
from bench.util import MIB, Child, CpuWindow, Processes, log, percentile, run_child

FIRST_UPDATE_TIMEOUT = 15.0
API_PATHS = [  # every other request is /metrics/current, the rest rotate through these reads
    "/api/v1/me",
    "/api/v1/metrics/names",
    "/api/v1/metrics/history?metric=cpu.percent",
    "/api/v1/alerts/rules",
    "/api/v1/alerts",
]
RSS_TARGET = 1.10  # RSS after the settle period at most 10 % above the RSS before the load


@dataclass
class SoakOptions:
    seconds: float = 180.0  # the load itself
    warmup_seconds: float = 20.0  # the same load, shorter, before the baseline...
    warmup_connections: int = 45  # ...and until this many dashboards came and went (a busy machine is slow)
    warmup_max_seconds: float = 120.0
    # Once the load stops: longer than the reconnect timeout (10 s), after which NiceGUI deletes a page,
    # and than its pruning of tab storage (60 s old, checked every 10 s: nox_ui/server.py).
    settle_seconds: float = 75.0
    concurrency: int = 15  # dashboards connected at any moment
    life_min: float = 2.0  # each dashboard lives this long, then the slot reconnects
    life_max: float = 6.0
    api_rate: float = 20.0  # API requests per second, in total
    api_workers: int = 4


def _rss_median(server: NoxServer, readings: int = 5) -> int:
    """Median of readings one second apart: one reading can land on a transient allocation."""
    values = []
    for index in range(readings):
        if index:
            time.sleep(1.0)
        values.append(server.rss())
    return int(statistics.median(values))


def _load(
    procs: Processes, server: NoxServer, workdir: Path, config: dict[str, Any], label: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round of the load; returns (the helper's result, server readings taken while it ran)."""
    child = Child(procs, "bench.soak", config, workdir / f"soak-{label}.log")
    readings: dict[str, Any] = {}
    try:
        child.expect("started", 60)
        limit = time.monotonic() + float(config.get("max_seconds", config["seconds"])) + 60
        with CpuWindow(server.pid) as cpu:
            peak = server.rss()
            while True:  # RSS every few seconds, for the peak, until the helper reaches its end
                try:
                    child.expect("ending", min(5.0, max(0.1, limit - time.monotonic())))
                    break
                except TimeoutError:
                    if time.monotonic() >= limit:
                        raise
                server.check_alive()
                peak = max(peak, server.rss())
            readings["rss_end"] = server.rss()
        readings.update(rss_peak=max(peak, readings["rss_end"]), cpu_percent=cpu.percent)
        readings["machine_busy_percent"] = cpu.machine_percent
        child.send({"cmd": "stop"})
        result = child.expect("result", 90)
    finally:
        child.close()
    return result, readings


def run(procs: Processes, workdir: Path, options: SoakOptions) -> dict[str, Any]:
    server = NoxServer(procs, workdir, "nox-soak")
    server.create_user()
    sessions = server.sessions(options.concurrency)  # also lifts the API rate limit for one address
    server.start()
    try:
        token = server.api_token()
        config = {
            "base": server.base,
            "sessions": sessions,
            "token": token,
            "concurrency": options.concurrency,
            "life_min": options.life_min,
            "life_max": options.life_max,
            "api_rate": options.api_rate,
            "api_workers": options.api_workers,
        }
        rss_start = server.rss()
        log(
            f"(h) soak: warm-up, the same load for {options.warmup_seconds:.0f} s and at least "
            f"{options.warmup_connections} connections"
        )
        warmup = {
            **config,
            "seconds": options.warmup_seconds,
            "min_connections": options.warmup_connections,
            "max_seconds": options.warmup_max_seconds,
        }
        warm, _ = _load(procs, server, workdir, warmup, "warmup")
        time.sleep(options.settle_seconds)  # the same wait as after the load: like is compared with like
        server.check_alive()
        rss_before = _rss_median(server)
        log(
            f"(h) soak: RSS {rss_start / MIB:.1f} MiB at start, {rss_before / MIB:.1f} MiB after the warm-up "
            f"({warm['connections']} connections, {warm['errors']} errors); {options.seconds:.0f} s of load"
        )
        result, readings = _load(procs, server, workdir, {**config, "seconds": options.seconds}, "load")
        log(
            f"(h) soak: load over, RSS {readings['rss_end'] / MIB:.1f} MiB; settling {options.settle_seconds:.0f} s"
        )
        time.sleep(options.settle_seconds)
        server.check_alive()
        rss_after = _rss_median(server)
    finally:
        server.stop()
    out = {
        **result,
        **readings,
        "options": options.__dict__,
        "warmup": {key: warm[key] for key in ("connections", "errors", "error_samples", "api_requests")},
        "rss_start": rss_start,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_ratio": rss_after / rss_before,
    }
    log(
        f"(h) soak: {result['connections']} connections, {result['api_requests']} API requests, "
        f"{result['errors']} errors; API p50/p95 {result['api_p50_ms']:.1f}/{result['api_p95_ms']:.1f} ms; "
        f"RSS {rss_before / MIB:.1f} -> {readings['rss_end'] / MIB:.1f} -> {rss_after / MIB:.1f} MiB "
        f"({out['rss_ratio']:.3f}x)"
    )
    return out


# -- the helper process ------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.connections = 0  # dashboards that opened, got live updates, lived their time and closed
        self.opened = 0
        self.errors: list[str] = []
        self.update_latencies: list[float] = []
        self.api_latencies: list[float] = []
        self.api_by_path: dict[str, int] = {}
        self.live_at_end: list[Any] = []  # closed only after "stop": RSS at the end is read with them live


async def _dashboard_slot(config: dict[str, Any], slot: int, tally: Tally, ending: asyncio.Event) -> None:
    """One dashboard after another: open, wait for live updates, live a few seconds, close."""
    from bench.simclient import SimClient

    sessions = list(config["sessions"])
    rng = random.Random(slot)
    while not ending.is_set():
        client = SimClient(str(config["base"]), sessions[slot % len(sessions)])
        try:
            await client.open()
            tally.opened += 1
            await asyncio.wait_for(client.first_append.wait(), FIRST_UPDATE_TIMEOUT)
            life = rng.uniform(float(config["life_min"]), float(config["life_max"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ending.wait(), life)
            if client.sio is None or not client.sio.connected:
                raise RuntimeError("disconnected by the server while it lived")
        except Exception as exc:  # counted; the slot reconnects after a pause
            tally.errors.append(f"dashboard: {type(exc).__name__}: {exc}")
            tally.update_latencies.extend(client.latencies)
            await client.close()
            await asyncio.sleep(1.0)
            continue
        tally.update_latencies.extend(client.latencies)
        if ending.is_set():
            tally.live_at_end.append(client)
            return
        await client.close()
        tally.connections += 1


async def _api_worker(
    config: dict[str, Any], worker: int, tally: Tally, ending: asyncio.Event, session: Any
) -> None:
    import aiohttp

    interval = float(config["api_workers"]) / float(config["api_rate"])
    headers = {"Authorization": f"Bearer {config['token']}"}
    index = worker
    next_at = time.monotonic() + interval * worker / float(config["api_workers"])
    while not ending.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ending.wait(), delay)
            if ending.is_set():
                return
        next_at += interval  # a fixed schedule: a slow answer does not lower the offered rate
        path = "/api/v1/metrics/current" if index % 2 == 0 else API_PATHS[(index // 2) % len(API_PATHS)]
        index += 1
        started = time.perf_counter()
        try:
            async with session.get(f"{config['base']}{path}", headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.errors.append(f"GET {path}: {type(exc).__name__}: {exc}")
            continue
        tally.api_latencies.append((time.perf_counter() - started) * 1000.0)
        tally.api_by_path[path] = tally.api_by_path.get(path, 0) + 1
        if status != 200:
            tally.errors.append(f"GET {path}: HTTP {status}")


async def main_async(config: dict[str, Any], emit: Any) -> None:
    import aiohttp

    tally = Tally()
    ending = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_dashboard_slot(config, slot, tally, ending))
            for slot in range(int(config["concurrency"]))
        ]
        tasks += [
            asyncio.create_task(_api_worker(config, worker, tally, ending, session))
            for worker in range(int(config["api_workers"]))
        ]
        started = time.monotonic()
        emit("started")
        await asyncio.sleep(float(config["seconds"]))
        limit = started + float(config.get("max_seconds", config["seconds"]))
        while tally.connections < int(config.get("min_connections", 0)) and time.monotonic() < limit:
            await asyncio.sleep(0.5)
        ending.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        emit("ending", live=len(tally.live_at_end))
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip() or json.loads(line).get("cmd") == "stop":
                break
        await asyncio.gather(*(client.close() for client in tally.live_at_end))
    api = tally.api_latencies
    emit(
        "result",
        seconds=elapsed,
        connections=tally.connections,
        opened=tally.opened,
        errors=len(tally.errors),
        error_samples=tally.errors[:10],
        api_requests=len(api),
        api_rps=len(api) / elapsed,
        api_p50_ms=percentile(api, 50),
        api_p95_ms=percentile(api, 95),
        api_max_ms=max(api) if api else float("nan"),
        api_by_path=tally.api_by_path,
        updates=len(tally.update_latencies),
        update_p50_ms=percentile(tally.update_latencies, 50),
        update_p95_ms=percentile(tally.update_latencies, 95),
    )


def main() -> None:
    run_child(main_async)


if __name__ == "__main__":
    main()
