"""`make bench`: one run of every measurement, side by side with Glances, then the table and
docs/benchmarks.md. See that file's "How it was measured" (bench/report.py writes it)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import psutil

from bench import (
    alerts_bench,
    cache_bench,
    history_bench,
    loadgen,
    report,
    sampling,
    search_bench,
    soak,
    startup,
)
from bench import glances as glances_mod
from bench.nox import NoxServer
from bench.util import MIB, Child, CpuWindow, Processes, log, measure_cpu

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
RECONNECT_TIMEOUT = 10.0  # `serve` passes reconnect_timeout=10 to ui.run
CLIENT_GONE = RECONNECT_TIMEOUT + 3.0  # NiceGUI deletes a closed page after the reconnect timeout


class Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


class Timeout(Exception):
    """The whole benchmark ran past its time budget."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise Timeout("hard time limit reached") if signum == signal.SIGALRM else SystemExit(128 + signum)


# -- machine ---------------------------------------------------------------------------------------


def code_version() -> str:
    """The commit under test, and whether the app's files differ from it."""
    try:
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "nox_ui", "components", "pages"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head}" + (f", with uncommitted changes in {', '.join(changed)}" if changed else "")


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    os_name = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    return {
        "code": code_version(),
        "cpu_model": model,
        "logical_cpus": psutil.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": psutil.virtual_memory().total / 2**30,
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "nicegui": version("nicegui"),
        "psutil": version("psutil"),
    }


# -- one live-dashboard measurement ----------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, procs: Processes, workdir: Path) -> None:
        self.args = args
        self.procs = procs
        self.workdir = workdir
        self.notes: list[str] = []

    def clients(self, server: NoxServer, module: str, count: int, sessions: list[str]) -> Child:
        config = {"base": server.base, "sessions": sessions, "count": count}
        child = Child(self.procs, module, config, self.workdir / f"{server.name}-{module}.log")
        ready = child.expect("ready", 180)
        if not ready.get("connected"):
            raise RuntimeError(f"{server.name}: no {module} client could connect: {ready.get('errors')}")
        if ready.get("failed"):
            self.notes.append(
                f"{server.name}: {ready['failed']} of {count} clients failed: {ready['errors']}"
            )
        log(
            f"{server.name}: {ready['connected']} {module.split('.')[-1]} clients live in {ready['connect_seconds']:.1f} s"
        )
        return child

    def warm_up(self, server: NoxServer, sessions: list[str]) -> None:
        """One dashboard opened and closed, so first-render costs (imports, templates) are paid
        before the baseline; then the reconnect timeout runs out and NiceGUI deletes it."""
        child = self.clients(server, "bench.simclient", 1, sessions)
        time.sleep(2)
        child.send({"cmd": "stop"})
        child.expect("result", 60)
        child.close()
        time.sleep(CLIENT_GONE)

    def live(
        self,
        server: NoxServer,
        module: str,
        count: int,
        sessions: list[str],
        window: float,
        idle_window: float,
    ) -> dict[str, Any]:
        server.check_alive()
        idle = measure_cpu(server.pid, idle_window)
        rss_before = server.rss()
        child = self.clients(server, module, count, sessions)
        try:
            time.sleep(self.args.settle)
            child.send({"cmd": "measure"})
            with CpuWindow(server.pid) as cpu, CpuWindow(child.proc.pid) as client_cpu:
                time.sleep(window)
            server.check_alive()
            rss_after = server.rss()
            uptime = time.monotonic() - server.started_at
            child.send({"cmd": "stop"})
            result = child.expect("result", 90)
        finally:
            child.close()
        clients = max(1, int(result["clients"]))
        out = {
            **result,
            "cpu_percent": cpu.percent,
            "window_seconds": cpu.seconds,
            "idle_cpu_percent": idle,
            "client_process_cpu_percent": client_cpu.percent,
            "machine_busy_percent": cpu.machine_percent,
            "server_uptime_s": uptime,
            "cpu_per_client": (cpu.percent - idle) / clients,
            "rss_before_mib": rss_before / MIB,
            "rss_after_mib": rss_after / MIB,
            "rss_per_client_mib": (rss_after - rss_before) / MIB / clients,
        }
        log(
            f"{server.name}: {count} x {module.split('.')[-1]}: CPU {cpu.percent:.2f} % (idle {idle:.2f} %), "
            f"RSS {rss_before / MIB:.1f} -> {rss_after / MIB:.1f} MiB, "
            f"p50/p95 {result['p50_ms']:.0f}/{result['p95_ms']:.0f} ms"
        )
        return out

    def new_server(self, name: str, sessions: int) -> tuple[NoxServer, list[str]]:
        server = NoxServer(self.procs, self.workdir, name)
        server.create_user()
        tokens = server.sessions(sessions)
        server.start()
        return server, tokens

    def rps(self, wrk: str | None, url: str, headers: dict[str, str]) -> dict[str, Any]:
        a = self.args
        loadgen.load(self.procs, wrk, url, headers, a.connections, 3)  # warm-up, discarded
        result = loadgen.load(self.procs, wrk, url, headers, a.connections, a.load_seconds)
        result.update(connections=a.connections, seconds=a.load_seconds)
        if result["non_2xx"]:
            self.notes.append(f"{url}: {result['non_2xx']} non-2xx answers under load")
        log(f"{url}: {result['rps']:.0f} req/s ({result['tool']}, {result['non_2xx']} non-2xx)")
        return result


def nox_rps(bench: Bench, server: NoxServer, wrk: str | None) -> dict[str, Any]:
    log("(d) nox requests/s")
    server.check_alive()
    headers = {"Authorization": f"Bearer {server.api_token()}"}
    url = f"{server.base}/api/v1/metrics/current"
    result = bench.rps(wrk, url, headers)
    result["body_bytes"] = _body_bytes(url, headers)
    return result


def _body_bytes(url: str, headers: dict[str, str]) -> int:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return len(response.read())


# -- the run ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace, procs: Processes, workdir: Path, results: dict[str, Any]) -> None:
    bench = Bench(args, procs, workdir)
    results["notes"] = bench.notes
    levels = [int(x) for x in args.levels.split(",") if x.strip()]

    log("installing / checking tools")
    results["machine"]["glances"] = glances_mod.ensure_glances()
    wrk = None if args.python_loadgen else loadgen.ensure_wrk()
    if wrk:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=30)
        banner = (done.stdout + done.stderr).strip().splitlines()[0]
        results["machine"]["loadgen"] = banner.split(" Copyright")[0].strip()
    else:
        results["machine"]["loadgen"] = "python aiohttp generator (bench/loadgen.py), in its own process"
        bench.notes.append("wrk unavailable: requests/s measured with the Python load generator")

    started = time.monotonic()
    signal.alarm(int(args.time_limit))  # everything below is bounded; a hang ends the run

    log("(i) nox-ui users list: the CLI's start")
    server = NoxServer(procs, workdir, "nox-cli")
    server.create_user()
    results["cli"] = startup.cli_seconds(server)
    log(f"(i) nox-ui users list: median {results['cli']['median_s']:.2f} s")

    log("(a) cost of one sample")
    results["sample_cost"] = sampling.run()
    log(
        f"(a) sampler {results['sample_cost']['sampler_us']:.0f} µs vs floor {results['sample_cost']['floor_us']:.0f} µs"
    )

    log("(e) history: 30 days of minute + hour rows, then queries")
    results["history"] = history_bench.run(workdir)
    log(f"(e) 30 d p95 uncached {results['history']['30d']['uncached_p95_ms']:.1f} ms")

    run_cache(results, workdir)
    run_search(results, workdir)

    log("(g) alert evaluation: 0 to 5,000 rules over this host's series")
    results["alerts"] = alerts_bench.run()
    log(f"(g) 1,000 rules: {results['alerts']['per_rules']['1000']['us']:.0f} µs per sample")

    nox: dict[str, Any] = {"levels": {}}
    results["nox"] = nox
    first, later = levels[0], levels[1:]
    rps_level = later[0] if later else first
    # The later levels' servers start now and wait: by the time they are measured, their 5-minute
    # chart windows (which every new page copies) are full, as on a server that has been up a while.
    waiting = {count: bench.new_server(f"nox-{count}", count + 1) for count in later}

    server, sessions = bench.new_server(f"nox-{first}", max(first, 3) + 1)
    try:
        log("(f) nox idle: CPU over seconds 10-20 after start, RSS at 20 s")
        server.wait_since_start(10)
        with CpuWindow(server.pid) as idle:
            server.wait_since_start(20)
        nox["idle_cpu_percent"], nox["idle_rss"] = idle.percent, server.rss()
        log(f"(f) nox idle RSS {nox['idle_rss'] / MIB:.1f} MiB, CPU {idle.percent:.2f} %")
        bench.warm_up(server, sessions)
        nox["levels"][str(first)] = bench.live(
            server, "bench.simclient", first, sessions, args.window, args.idle_window
        )
        if not args.skip_browser:
            log("(c) check: 3 simulated vs 3 Chromium dashboards")
            time.sleep(CLIENT_GONE)
            check: dict[str, Any] = {}
            nox["browser_check"] = check
            check["sim"] = bench.live(
                server, "bench.simclient", 3, sessions, args.check_window, args.idle_window
            )
            time.sleep(CLIENT_GONE)
            try:
                check["chromium"] = bench.live(
                    server, "bench.browsers", 3, sessions, args.check_window, args.idle_window
                )
                results["machine"]["chromium"] = check["chromium"].get("version", "n/a")
            except Exception as exc:  # no Chromium / Playwright: say so, keep the rest
                bench.notes.append(f"Chromium check failed: {type(exc).__name__}: {exc}")
                log(f"Chromium check failed: {exc}")
        if rps_level == first:
            time.sleep(CLIENT_GONE)
            nox["rps"] = nox_rps(bench, server, wrk)
    finally:
        server.stop()

    log("Glances")
    gl: dict[str, Any] = {}
    results["glances"] = gl
    glances = glances_mod.GlancesServer(procs, workdir)
    glances.start()
    try:
        glances.wait_since_start(10)
        with CpuWindow(glances.pid) as idle:
            glances.wait_since_start(20)
        gl["idle_cpu_percent"], gl["idle_rss"] = idle.percent, glances.rss()
        log(f"(f) glances idle RSS {gl['idle_rss'] / MIB:.1f} MiB, CPU {idle.percent:.2f} %")
        url = f"{glances.base}{glances_mod.API}"
        with glances_mod.Poller(url) as poller:
            time.sleep(args.settle)
            with CpuWindow(glances.pid) as cpu:
                time.sleep(args.window)
        glances.check_alive()
        gl.update(
            poll_machine_busy_percent=cpu.machine_percent,
            poll_cpu_percent=cpu.percent,
            poll_seconds=cpu.seconds,
            poll_ok=poller.ok,
            poll_failed=poller.failed,
        )
        log(f"(b) glances polled at 1 Hz: CPU {cpu.percent:.2f} %")
        gl["rps"] = bench.rps(wrk, url, {})
        gl["rps"]["body_bytes"] = _body_bytes(url, {})
    finally:
        glances.stop()

    for count in later:
        server, sessions = waiting.pop(count)
        try:
            bench.warm_up(server, sessions)
            nox["levels"][str(count)] = bench.live(
                server, "bench.simclient", count, sessions, args.window, args.idle_window
            )
            if count == rps_level:
                time.sleep(CLIENT_GONE)
                nox["rps"] = nox_rps(bench, server, wrk)
        finally:
            server.stop()
    run_soak(args, procs, workdir, results)
    signal.alarm(0)
    results["measure_seconds"] = time.monotonic() - started


def soak_options(args: argparse.Namespace) -> soak.SoakOptions:
    return soak.SoakOptions(
        seconds=args.soak_seconds, concurrency=args.soak_clients, api_rate=args.soak_api_rate
    )


def run_soak(args: argparse.Namespace, procs: Processes, workdir: Path, results: dict[str, Any]) -> None:
    log(
        f"(h) load and soak: {args.soak_clients} dashboards reconnecting + API reads for {args.soak_seconds:.0f} s"
    )
    results["soak"] = soak.run(procs, workdir, soak_options(args))
    for stage in (results["soak"], results["soak"]["warmup"]):
        if stage["errors"]:
            results.setdefault("notes", []).append(f"soak errors: {stage['error_samples']}")


def run_cache(results: dict[str, Any], workdir: Path) -> None:
    log("(j) cache: cold vs warm (history ranges, the process snapshot for 1-50 viewers, host facts)")
    results["cache"] = cache_bench.run(workdir)
    fifty = results["cache"]["processes"]["viewers"]["50"]
    log(
        f"(j) 30 d history warm {results['cache']['history']['30d']['ratio']:.1f}x faster; 50 viewers: "
        f"{fifty['shared']['readings_per_s']:.2f} vs {fifty['per_listing']['readings_per_s']:.2f} readings/s"
    )


def run_search(results: dict[str, Any], workdir: Path) -> None:
    log(f"(k) search: {search_bench.EVENTS:,} audit events indexed, then four kinds of searches")
    results["search"] = search_bench.run(workdir)
    k = results["search"]
    slowest = max(k["kinds"][kind]["p95_ms"] for kind in search_bench.TARGET_KINDS)
    log(f"(k) indexed at {k['docs_per_second']:.0f} documents/s; slowest p95 {slowest:.1f} ms")


def run_only(args: argparse.Namespace, procs: Processes, workdir: Path, results: dict[str, Any]) -> None:
    """One measurement alone (`--only`), e.g. to check a change without the whole ~12-minute run."""
    results["notes"] = []
    started = time.monotonic()
    signal.alarm(int(args.time_limit))
    if args.only == "soak":
        run_soak(args, procs, workdir, results)
    elif args.only == "cache":
        run_cache(results, workdir)
    elif args.only == "search":
        run_search(results, workdir)
    elif args.only == "startup":
        startup.run(procs, workdir, results)
    signal.alarm(0)
    results["measure_seconds"] = time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--levels", default="1,10,50", help="simulated dashboards per level")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of each CPU/latency window")
    parser.add_argument("--check-window", type=float, default=30.0, help="window of the Chromium check")
    parser.add_argument("--idle-window", type=float, default=15.0, help="idle baseline before each level")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds after connecting, before measuring"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--load-seconds", type=int, default=10)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--python-loadgen", action="store_true", help="never use wrk")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="hard limit for the measurements")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--only",
        choices=["cache", "search", "soak", "startup"],
        help="run this one measurement and print its rows; docs/benchmarks.md is left as it is",
    )
    parser.add_argument("--soak-seconds", type=float, default=180.0, help="(h) how long the load runs")
    parser.add_argument("--soak-clients", type=int, default=15, help="(h) dashboards connected at a time")
    parser.add_argument("--soak-api-rate", type=float, default=20.0, help="(h) API requests per second")
    args = parser.parse_args(argv)

    from loguru import logger

    logger.remove()  # the harness's own use of nox_ui (sessions, history) stays quiet
    logger.add(sys.stderr, level="WARNING")
    for key in [k for k in os.environ if k.startswith("NOX_")]:
        del os.environ[key]

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    console = (out_dir / "output.txt").open("w", encoding="utf-8")
    real_stdout = sys.stdout
    sys.stdout = Tee(real_stdout, console)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="nox-bench-"))
    results: dict[str, Any] = {"date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
    results["machine"] = machine()
    t0 = time.monotonic()
    code = 0
    try:
        log(f"work dir {workdir}, results in {out_dir.relative_to(ROOT)}")
        (run_only if args.only else run)(args, procs, workdir, results)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        code = 1
        traceback.print_exc(file=sys.stdout)
        results.setdefault("notes", []).append(f"run aborted: {type(exc).__name__}: {exc}")
    finally:
        signal.alarm(0)
        procs.stop_all()
        for log_file in workdir.glob("*.log"):
            with contextlib.suppress(OSError):
                shutil.copy(log_file, out_dir / log_file.name)
        shutil.rmtree(workdir, ignore_errors=True)
    results["total_seconds"] = time.monotonic() - t0

    rows = report.build_rows(results)
    print()
    print(report.text_table(rows))
    print(f"\nwhole run: {results['total_seconds']:.0f} s; raw results in {out_dir.relative_to(ROOT)}")
    for note in results.get("notes", []):
        print(f"note: {note}")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if code == 0 and not args.no_docs and not args.only:
        DOCS.write_text(report.markdown(results, rows), encoding="utf-8")
        print(f"wrote {DOCS.relative_to(ROOT)}")
    sys.stdout = real_stdout
    console.close()
    return code
