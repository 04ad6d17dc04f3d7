"""The results table (console and Markdown) and docs/benchmarks.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.soak import RSS_TARGET
from bench.util import MIB


@dataclass
class Row:
    metric: str
    nox: str
    reference: str
    value: str
    target: str
    ok: bool | None  # None: informational, no target

    @property
    def result(self) -> str:
        return "—" if self.ok is None else ("pass" if self.ok else "FAIL")


HEADERS = ("metric", "Nox UI", "Glances / floor", "ratio or value", "target", "result")


def _f(value: float, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def _check(value: float, ok: bool) -> bool:
    return ok and not math.isnan(value)


def build_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    a = r.get("sample_cost")
    if a:
        rows.append(
            Row(
                "(a) one sample: Sampler.sample() vs bare psutil calls",
                _f(a["sampler_us"], 0, " µs"),
                _f(a["floor_us"], 0, " µs (floor)"),
                _f(a["ratio"], 2, "x"),
                "≤ 1.30x",
                _check(a["ratio"], a["ratio"] <= 1.3),
            )
        )
    nox, gl = r.get("nox", {}), r.get("glances", {})
    one = nox.get("levels", {}).get("1")
    if one and gl.get("poll_cpu_percent") is not None:
        ratio = one["cpu_percent"] / gl["poll_cpu_percent"] if gl["poll_cpu_percent"] else float("nan")
        rows.append(
            Row(
                "(b) server CPU: 1 live dashboard vs Glances /api/4/all polled at 1 Hz",
                _f(one["cpu_percent"], 2, " %"),
                _f(gl["poll_cpu_percent"], 2, " %"),
                _f(ratio, 2, "x"),
                "≤ 0.50x",
                _check(ratio, ratio <= 0.5),
            )
        )
    for n, level in sorted(nox.get("levels", {}).items(), key=lambda item: int(item[0])):
        last = int(n) == 50
        rows.append(
            Row(
                f"(c) server CPU, {n} dashboard(s), % of one core",
                _f(level["cpu_percent"], 2, " %"),
                "—",
                f"{level['cpu_per_client']:+.3f} %/client over idle",
                "≤ 15 % at 50" if last else "",
                _check(level["cpu_percent"], level["cpu_percent"] <= 15) if last else None,
            )
        )
        rows.append(
            Row(
                f"(c) RSS growth per client, {n} dashboard(s)",
                _f(level["rss_per_client_mib"], 2, " MiB"),
                "—",
                f"{_f(level['rss_before_mib'], 1)} → {_f(level['rss_after_mib'], 1)} MiB, "
                f"server up {_f(level.get('server_uptime_s', float('nan')), 0)} s",
                "≤ 1.5 MiB at 50" if last else "",
                _check(level["rss_per_client_mib"], level["rss_per_client_mib"] <= 1.5) if last else None,
            )
        )
        rows.append(
            Row(
                f"(c) update latency p50 / p95, {n} dashboard(s)",
                f"{_f(level['p50_ms'], 0)} / {_f(level['p95_ms'], 0)} ms",
                "—",
                f"{level['updates']} updates, max {_f(level['max_ms'], 0)} ms",
                "p95 ≤ 250 ms at 50" if last else "",
                _check(level["p95_ms"], level["p95_ms"] <= 250) if last else None,
            )
        )
    check = nox.get("browser_check") or {}
    sim, real = check.get("sim"), check.get("chromium")
    if sim and real:
        rows.append(
            Row(
                "(c) check: server CPU per client over idle, 3 Chromium pages vs 3 simulated",
                _f(real["cpu_per_client"], 3, " %"),
                _f(sim["cpu_per_client"], 3, " % (simulated)"),
                f"total {_f(real['cpu_percent'], 2)} % vs {_f(sim['cpu_percent'], 2)} %",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "(c) check: update latency p50 / p95, 3 Chromium pages vs 3 simulated",
                f"{_f(real['p50_ms'], 0)} / {_f(real['p95_ms'], 0)} ms",
                f"{_f(sim['p50_ms'], 0)} / {_f(sim['p95_ms'], 0)} ms (simulated)",
                "in-page: includes the browser's own handling",
                "",
                None,
            )
        )
    d_nox, d_gl = nox.get("rps"), gl.get("rps")
    if d_nox and d_gl:
        ratio = d_nox["rps"] / d_gl["rps"] if d_gl["rps"] else float("nan")
        rows.append(
            Row(
                f"(d) req/s: /api/v1/metrics/current vs /api/4/all ({d_nox['connections']} conn, {d_nox['seconds']} s)",
                _f(d_nox["rps"], 0),
                _f(d_gl["rps"], 0),
                _f(ratio, 2, "x"),
                "≥ 2x",
                _check(ratio, ratio >= 2 and d_nox["non_2xx"] == 0),
            )
        )
    e = r.get("history")
    if e:
        for label in ("24h", "7d", "30d"):
            part = e.get(label)
            if not part:
                continue
            target = label == "30d"
            rows.append(
                Row(
                    f"(e) history query {label.replace('h', ' h').replace('d', ' d')} ({part['tier']} tier), uncached p50 / p95",
                    f"{_f(part['uncached_p50_ms'], 1)} / {_f(part['uncached_p95_ms'], 1)} ms",
                    "—",
                    f"cached {_f(part['cached_p50_ms'], 2)} / {_f(part['cached_p95_ms'], 2)} ms",
                    "p95 ≤ 50 ms" if target else "",
                    _check(part["uncached_p95_ms"], part["uncached_p95_ms"] <= 50) if target else None,
                )
            )
    g = r.get("alerts")
    if g:
        thousand = g["per_rules"]["1000"]
        sample_us = (r.get("sample_cost") or {}).get("sampler_us")
        rows.append(
            Row(
                f"(g) alert evaluation per sample, 1,000 rules over {g['series']} series ({thousand['pairs']} rule-series pairs)",
                _f(thousand["us"], 0, " µs"),
                f"one sample {_f(sample_us, 0)} µs" if sample_us else "—",
                f"{_f(thousand['us'] / sample_us, 2, 'x')} of a sample" if sample_us else "",
                "≤ 1 ms",
                _check(thousand["us"], thousand["us"] <= 1000),
            )
        )
    rows += cache_rows(r.get("cache"))
    rows += search_rows(r.get("search"))
    rows += soak_rows(r.get("soak"))
    if nox.get("idle_rss") and gl.get("idle_rss"):
        ratio = nox["idle_rss"] / gl["idle_rss"]
        rows.append(
            Row(
                "(f) idle RSS 20 s after start",
                _f(nox["idle_rss"] / MIB, 1, " MiB"),
                _f(gl["idle_rss"] / MIB, 1, " MiB"),
                _f(ratio, 2, "x"),
                "≤ 1.30x",
                _check(ratio, ratio <= 1.3),
            )
        )
    cli = r.get("cli")
    if cli:
        rows.append(
            Row(
                "(i) `nox-ui users list`, wall time (median of 7)",
                _f(cli["median_s"], 2, " s"),
                "—",
                f"min {_f(cli['min_s'], 2)} s",
                "≤ 0.50 s",
                _check(cli["median_s"], cli["median_s"] <= 0.5),
            )
        )
    if nox.get("idle_cpu_percent") is not None and gl.get("idle_cpu_percent") is not None:
        rows.append(
            Row(
                "(f) idle CPU, no client (10 s window)",
                _f(nox["idle_cpu_percent"], 2, " %"),
                _f(gl["idle_cpu_percent"], 2, " %"),
                "Nox samples at 1 Hz; Glances only on request",
                "",
                None,
            )
        )
    return rows


def cache_rows(j: dict[str, Any] | None) -> list[Row]:
    """(j): cold vs warm where the cache is used; each namespace must at least halve the wait."""
    if not j:
        return []
    rows = []
    parts = [
        *[
            (f"history {label[:-1]} d ({j['history'][label]['tier']} tier)", j["history"][label])
            for label in ("7d", "30d")
        ],
        (f"process listing ({j['processes']['processes']} processes)", j["processes"]["listing"]),
        ("host facts", j["host"]),
    ]
    for what, part in parts:
        rows.append(
            Row(
                f"(j) cache: {what}, cold / warm p50",
                f"{_f(part['warm_p50_ms'], 3)} ms warm",
                f"{_f(part['cold_p50_ms'], 2)} ms cold",
                _f(part["ratio"], 1, "x"),
                "≥ 2x",
                _check(part["ratio"], part["ratio"] >= 2),
            )
        )
    for count, modes in j["processes"]["viewers"].items():
        shared, alone = modes["shared"], modes["per_listing"]
        fewer = shared["readings_per_s"] and alone["readings_per_s"] / shared["readings_per_s"]
        rows.append(
            Row(
                f"(j) cache: process-table readings per second, {count} viewer(s) of the processes page (2 s refresh)",
                f"{_f(shared['readings_per_s'], 2)} /s shared",
                f"{_f(alone['readings_per_s'], 2)} /s unshared",
                f"{_f(fewer or float('nan'), 1, 'x')} fewer; listing p50 {_f(shared['listing_p50_ms'], 2)} vs "
                f"{_f(alone['listing_p50_ms'], 2)} ms",
                "≤ 1 reading per 1 s interval",
                _check(shared["readings_per_s"], shared["readings"] <= j["window_s"] + 1),
            )
        )
    return rows


def search_rows(k: dict[str, Any] | None) -> list[Row]:
    """(k): indexing 100,000 audit events, then p50 / p95 of four kinds of searches (bench/search_bench.py)."""
    if not k:
        return []
    rows = [
        Row(
            f"(k) search: index {k['events']:,} audit events (the rebuild `nox-ui search reindex` runs)",
            f"{_f(k['index_seconds'], 1)} s",
            "—",
            f"{_f(k['docs_per_second'], 0)} documents/s, {_f(k['index_mib'], 1)} MiB",
            "",
            None,
        )
    ]
    for kind, part in k["kinds"].items():
        held = kind != "broad word"
        rows.append(
            Row(
                f"(k) search: {kind} query p50 / p95 on {k['events']:,} audit events (e.g. {part['example']})",
                f"{_f(part['p50_ms'], 1)} / {_f(part['p95_ms'], 1)} ms",
                "—",
                f"{part['queries']} searches, {_f(part['mean_matches'], 0)} matches on average"
                + (f", {part['fuzzy']} fuzzy" if part["fuzzy"] else ""),
                "p95 ≤ 50 ms" if held else "",
                _check(part["p95_ms"], part["p95_ms"] <= 50) if held else None,
            )
        )
    return rows


def soak_rows(h: dict[str, Any] | None) -> list[Row]:
    if not h:
        return []
    minutes = h["seconds"] / 60
    errors = h["errors"] + h["warmup"]["errors"]
    return [
        Row(
            f"(h) soak: errors over {_f(minutes, 1)} min, {h['options']['concurrency']} dashboards reconnecting + API reads",
            f"{errors} errors",
            "—",
            f"{h['connections']} dashboard connections completed, {h['api_requests']} API requests",
            "0 errors",
            errors == 0 and h["connections"] > 0 and h["api_requests"] > 0,
        ),
        Row(
            "(h) soak: API latency p50 / p95 under the load",
            f"{_f(h['api_p50_ms'], 1)} / {_f(h['api_p95_ms'], 1)} ms",
            "—",
            f"{_f(h['api_rps'], 1)} req/s, max {_f(h['api_max_ms'], 0)} ms; "
            f"machine busy {_f(h['machine_busy_percent'], 0)} % of a core",
            "",
            None,
        ),
        Row(
            "(h) soak: RSS after the load and a settle period vs before it",
            _f(h["rss_after"] / MIB, 1, " MiB"),
            _f(h["rss_before"] / MIB, 1, " MiB (before)"),
            f"{_f(h['rss_ratio'], 3, 'x')}; {_f(h['rss_end'] / MIB, 1)} MiB at the end of the load, "
            f"peak {_f(h['rss_peak'] / MIB, 1)} MiB",
            "within 10 % of before",
            _check(h["rss_ratio"], h["rss_ratio"] <= RSS_TARGET),
        ),
    ]


def text_table(rows: list[Row]) -> str:
    cells = [HEADERS, *[(r.metric, r.nox, r.reference, r.value, r.target, r.result) for r in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(HEADERS))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        result = f"**{r.result}**" if r.ok is False else r.result
        lines.append(f"| {r.metric} | {r.nox} | {r.reference} | {r.value} | {r.target} | {result} |")
    return "\n".join(lines)


HOW = """\
## How it was measured

Everything runs on this one machine; servers listen on 127.0.0.1 only. The harness starts each
server as a subprocess in a fresh temporary data dir, measures it from outside with psutil, and
ends every process it started when it finishes (or fails). Load generators and simulated clients
run in processes of their own, so their CPU is never counted as the server's. On a 2-core machine
they still compete with the server for the cores, which shows in the latencies.

- **CPU %** of a server = Δ(user + system CPU time of its process tree, all threads) / Δ(wall
  time) x 100, i.e. percent of one core. "per client over idle" subtracts the same server's idle
  CPU (measured with no client, after a warm-up page load) and divides by the number of clients.
  psutil reads these times in clock ticks (10 ms): one tick is 0.03 % of a core over a 30 s
  window and 0.07 % over a 15 s baseline, so per-client figures at 1 and 3 clients are within a
  few hundredths of a percent of noise; the 10- and 50-client levels are the ones to read.
  "machine busy" is the whole machine's busy CPU during the same window (percent of one core, all
  processes, the harness's clients included): a value far above server + client CPU means
  something else was running.
- **(a) sample cost**: in the harness process, `Sampler(default_collectors()).sample()` against a
  function that makes only the psutil calls of one steady-state sample (`cpu_times(percpu=True)`,
  `os.getloadavg`, `virtual_memory`, `swap_memory`, `disk_usage` for each real mount (the list is
  cached for 60 s by the collector, read once here), `disk_io_counters(perdisk=True)`,
  `net_io_counters(pernic=True)`, `pids()`; the sensors are read only when the host has them, since
  the collector looks for absent sensors once every 5 minutes). Both warmed up; then rounds of
  ~0.6 s of calls each, alternating which side goes first; the figure is the median of the
  per-round means.
- **(b)/(c) live dashboards**: `nox-ui serve` (run as `python -m nox_ui serve`, the same CLI; NOX_DATA_DIR in a temp dir, free port, default
  1 s sample interval, default log level), a viewer created with `nox-ui users create bench --role
  viewer --password-stdin`, and session cookies from `AuthService.start_session` called in the
  harness on the same SQLite file (one session per client). One server per level: the
  1-dashboard server first (it also gives (f) and the Chromium check); the 10- and 50-dashboard
  servers are started right after (a) and (e) and wait idle until their turn, so the 5-minute
  chart window that every new dashboard copies is full, as on a server that has been up a while
  (the "server up" column; the two waiting servers idle in the background, ~0.4 % of a core each,
  while the first server and Glances are measured). Each server gets one warm-up dashboard
  (opened and closed, then the 10 s reconnect timeout is let run out so NiceGUI deletes it)
  before its idle baseline (15 s) and RSS before are taken. A simulated client
  does on the wire what `nicegui.js` does: GET `/` with the cookie (and the cookies NiceGUI sets),
  the socket query parsed from the page (`client_id`, `next_message_id`, `implicit_handshake`),
  python-socketio over a websocket at `/_nicegui_ws/socket.io` with that query plus
  `document_id`/`tab_id`/`old_tab_id`; the page asks for the implicit handshake, so the connect
  itself is the handshake (an explicit `handshake` emit is sent when a page asks for it); every
  message is read, `ack`ed every 3 s like the browser does. After all clients received their
  first chart update and 5 s more, CPU is measured over the window; RSS after is read at its end.
  **Latency** = time a `run_javascript` message calling `noxAppend({chart_id: [ts_ms, ...]})`
  is received minus `ts_ms` (the sample's own timestamp, taken at the start of sampling), so it
  includes the sampling, the view-model work, NiceGUI's outbox and the socket.
  **RSS growth per client** = (RSS with n clients - RSS before) / n. (b) uses the 1-dashboard level.
- **Chromium check**: on the 1-dashboard server, after that level, 3 simulated dashboards and then
  3 headless system-Chromium pages (Playwright, one context each, signed in with the `nox_session`
  cookie; flags `--no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --no-first-run --disable-sync`), each against its own idle baseline.
  In the pages, `window.noxAppend` is wrapped to record `Date.now() - ts_ms`.
- **Glances**: installed by the harness into `bench/.venv-glances` (`pip install 'glances[web]'`:
  the `web` extra brings FastAPI/uvicorn, which `glances -w` needs), run as `glances -w
  --disable-webui --disable-check-update -B 127.0.0.1 -p PORT` with its defaults otherwise (stats
  refreshed on request, at most once per `--cached-time` 1 s). (b): a 1 Hz poller in the harness
  reads the full `/api/4/all` body. Note that `/api/4/all` carries more than Nox's sample (the
  process list, for one), which is what Glances pays for on every refresh.
- **(d) requests/s**: `wrk -t1 -c16 -d10s` (or, without wrk, an aiohttp generator in its own
  process with 16 keep-alive connections) after a 3 s warm-up run, against
  `GET /api/v1/metrics/current` with a bearer token from `POST /api/v1/auth/token` and against
  Glances `GET /api/4/all`. Any non-2xx answer fails the row. The `api_rate_limit` runtime setting
  (600/minute per address by default) is raised for this run; its check still runs per request.
- **(g) alert evaluation**: `AlertEngine.evaluate` with a store that keeps nothing, fed 30 samples of this
  host's real series with rising timestamps, for 0, 100, 1,000 and 5,000 rules from
  `synthetic_rules` (each on one series, every fifth on all series of a metric; thresholds never
  crossed, the steady state), and 1,000 rules all firing; the median of 5 timed passes. The cost
  follows the number of (rule, matching series) pairs, not rules times all series: each rule's matching
  series are listed once per change of the series set.
- **(e) history**: a migrated SQLite database, 30 days of 1-minute rows plus the matching 1-hour
  rows for 40 series (this host's own series, topped up) inserted with `executemany`; then
  `HistoryStore.query(series, since, until)` 200 times per range on a random series. "Uncached"
  shifts the range by a random whole number of seconds every time so the diskcache key never
  repeats (the cache write after a miss is included); "cached" repeats one range.
- **(j) cache** (`bench/cache_bench.py`; alone: `python -m bench --only cache`): history: a migrated
  SQLite database with 30 days of minute + hour rows for 10 series (the (e) generator), one fixed
  range queried 30 times cold (both history namespaces invalidated first, so the cache write is
  included) and 200 times warm; process listing: `ProcessService.list` (viewer, 50 rows) 20 times
  with the snapshot invalidated first and 200 times within one interval; host facts: the OS read vs
  the cache, 50 and 2,000 times. Viewers: 1, 10 and 50 threads, each listing every 2 s from a random
  phase for 6 s, with the shared snapshot (1 s) and with its TTL at 0 (every listing reads, except
  ones that overlap exactly); a reading is counted per `psutil.pids()` call.
- **(k) search** (`bench/search_bench.py`; alone: `python -m bench --only search`): 100,000 audit
  events bulk-inserted into a migrated SQLite database (40 actors, a few of them doing most of the work;
  15 actions weighted as a panel's log is; ~16,000 source addresses; targets, details), indexed by
  `rebuild_index`, the code `nox-ui search reindex` runs (reads, documents, Whoosh, one commit,
  publish). Then 60 searches of each kind through `SearchService.search_now` as an admin (parse, role
  filter, counts per type, a page of 20 hits with highlighted snippets; no counts cache): a word (an
  actor's name), a prefix (its first three letters and `*`), a phrase (two words of an action, in
  quotes) and a fuzzy one (a name with two letters swapped or one doubled, found through the
  typo-tolerant retry). "broad word" (`success`, in nine events of ten) is shown without a target:
  audit events are counted up to 2,000 and read newest first, so a common word costs about as much
  as a rare one.
- **(f) idle RSS**: RSS of the server process tree 20 s after start with no client; idle CPU over
  seconds 10-20. Alone, with (i): `python -m bench --only startup` (a server of its own, then
  Glances, one after the other).
- **(i) CLI start** (`bench/startup.py`): `python -m nox_ui users list` against a migrated data dir
  with one user, byte-code caching on as for an installed package (one warm-up run writes it);
  wall time from the fork to the exit, median of 7 runs. The CLI builds only the core
  (`nox_ui/app.py` `build_core`): no NiceGUI, sampler, alerting or notifiers.
- **(h) load and soak** (`bench/soak.py`; alone: `python -m bench --only soak`): a server of its
  own (viewer account, one session cookie per dashboard slot, API rate limit raised as in (d)).
  A helper process keeps 15 simulated dashboards connected at any moment (the (c) client); each
  one waits for its first chart update, lives 2-6 s, disconnects, and its slot opens a new one at
  once (a new page, a new NiceGUI client and browser tab each time). Meanwhile 4 API workers send
  20 requests/s on a fixed schedule with a viewer's bearer token: every other one
  `GET /api/v1/metrics/current`, the rest rotating through `/api/v1/me`, `/metrics/names`,
  `/metrics/history?metric=cpu.percent`, `/alerts/rules` and `/alerts`; latency is per request,
  measured in the helper. An **error** is any non-200 answer, failed request, dashboard that could
  not connect, got no chart update within 15 s, or was disconnected by the server while it lived.
  First a warm-up of the same load (at least 20 s and 45 dashboards come and gone: first-use
  costs, and the allocator's high-water mark for ~50 pages alive at once, the 15 open plus the
  closed ones kept for the 10 s reconnect timeout), then 75 s of settling (longer than the
  reconnect timeout and than the pruning of NiceGUI's tab storage, 60 s old, every 10 s);
  **RSS before** is the median of 5 readings 1 s apart. The load then runs 180 s (RSS read every
  5 s for the peak, and at its end with the last dashboards still connected), the same 75 s of
  settling follow, and **RSS after** is read like RSS before. Memory that Python frees is not
  always returned to the system, so RSS does not fall back below the warm-up's high-water mark;
  what the target catches is growth with the number of pages served (a leak), which the soak
  serves several hundred of.
"""


def markdown(r: dict[str, Any], rows: list[Row]) -> str:
    m = r["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` on {r['date']} (whole run: {r['total_seconds']:.0f} s). "
        "Numbers are from that one run on the machine below; rerun `make bench` to refresh this file.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['physical_cores']} cores)",
        f"- RAM: {m['ram_gib']:.1f} GiB",
        f"- Kernel: {m['kernel']} ({m['os']})",
        f"- Python {m['python']}, NiceGUI {m['nicegui']}, psutil {m['psutil']}",
        f"- Code measured: {m.get('code', 'n/a')}",
        f"- Glances {m.get('glances', 'n/a')}; load generator: {m.get('loadgen', 'n/a')}; "
        f"Chromium {m.get('chromium', 'n/a')}",
        "",
        "## Results",
        "",
        markdown_table(rows),
        "",
        f"Targets met: {sum(1 for x in rows if x.ok)} of {sum(1 for x in rows if x.ok is not None)}.",
        "",
    ]
    lines += details(r)
    lines += ["", HOW]
    notes = r.get("notes") or []
    if notes:
        lines += ["## Notes from this run", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def details(r: dict[str, Any]) -> list[str]:
    out = ["## Details", ""]
    nox, gl = r.get("nox", {}), r.get("glances", {})
    levels = nox.get("levels", {})
    if levels:
        out += [
            'Live dashboards (simulated clients; one server per level, "server up" = its age when measured, '
            "which sets how full the 5-minute chart window copied into every new page is):",
            "",
            "| clients | server up (s) | CPU % | idle CPU % | CPU %/client over idle | RSS before → after (MiB) "
            "| MiB/client | p50 / p95 / max ms | msgs/s per client | bytes/s per client | client process CPU % "
            "| machine busy % |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, lv in sorted(levels.items(), key=lambda item: int(item[0])):
            out.append(
                f"| {n} | {_f(lv.get('server_uptime_s', float('nan')), 0)} | {_f(lv['cpu_percent'], 2)} | "
                f"{_f(lv['idle_cpu_percent'], 2)} | "
                f"{_f(lv['cpu_per_client'], 3)} | {_f(lv['rss_before_mib'], 1)} → {_f(lv['rss_after_mib'], 1)} | "
                f"{_f(lv['rss_per_client_mib'], 2)} | {_f(lv['p50_ms'], 0)} / {_f(lv['p95_ms'], 0)} / "
                f"{_f(lv['max_ms'], 0)} | {_f(lv['messages_per_client_per_s'], 2)} | "
                f"{_f(lv['bytes_per_client_per_s'], 0)} | {_f(lv.get('client_process_cpu_percent', float('nan')), 1)} | "
                f"{_f(lv.get('machine_busy_percent', float('nan')), 1)} |"
            )
        out.append("")
    cmp_ = nox.get("browser_check")
    if cmp_:
        out += [
            "Simulation check (same server, 3 clients each, own idle baseline before each):",
            "",
            "| clients | CPU % | idle CPU % | CPU %/client over idle | RSS before → after (MiB) | p50 / p95 ms |",
            "|---|---|---|---|---|---|",
        ]
        for label, key in (("3 simulated", "sim"), ("3 Chromium pages", "chromium")):
            side = cmp_.get(key)
            if side:
                out.append(
                    f"| {label} | {_f(side['cpu_percent'], 2)} | {_f(side['idle_cpu_percent'], 2)} | "
                    f"{_f(side['cpu_per_client'], 3)} | {_f(side['rss_before_mib'], 1)} → "
                    f"{_f(side['rss_after_mib'], 1)} | {_f(side['p50_ms'], 0)} / {_f(side['p95_ms'], 0)} |"
                )
        out.append("")
    for name, side in (
        ("Nox UI /api/v1/metrics/current", nox.get("rps")),
        ("Glances /api/4/all", gl.get("rps")),
    ):
        if side:
            out.append(
                f"- {name}: {_f(side['rps'], 0)} req/s with {side['tool']}, {side['requests']} requests, "
                f"{side['non_2xx']} non-2xx, latency p50 {_f(side['p50_ms'], 1)} ms / p99 {_f(side['p99_ms'], 1)} ms"
                + (f", socket errors: {side['socket_errors']}" if side.get("socket_errors") else "")
                + (f", body {side['body_bytes']} bytes" if side.get("body_bytes") else "")
            )
    if gl.get("poll_cpu_percent") is not None:
        out.append(
            f"- Glances with the 1 Hz poller: {_f(gl['poll_cpu_percent'], 2)} % CPU over "
            f"{_f(gl.get('poll_seconds', 0), 0)} s ({gl.get('poll_ok', 0)} answers, {gl.get('poll_failed', 0)} failed; "
            f"machine busy {_f(gl.get('poll_machine_busy_percent', float('nan')), 1)} % of a core meanwhile)"
        )
    a = r.get("sample_cost")
    if a:
        out.append(
            f"- Sample cost: {a['rounds']} rounds x {a['iterations_per_round']} calls per side; "
            f"{a['series_per_sample']} series per sample, mounts {a['mounts']}, "
            f"sensors {'present' if a['sensors_present'] else 'absent'}, {a['processes']} processes; "
            f"sampler rounds {min(a['sampler_rounds_us']):.0f}-{max(a['sampler_rounds_us']):.0f} µs, "
            f"floor rounds {min(a['floor_rounds_us']):.0f}-{max(a['floor_rounds_us']):.0f} µs"
        )
    g = r.get("alerts")
    if g:
        out.append(
            "- Alert evaluation (median of 5 passes, standalone engine, thresholds never crossed): "
            + ", ".join(
                f"{int(count):,} rules {_f(part['us'], 1)} µs ({part['pairs']} pairs)"
                for count, part in g["per_rules"].items()
            )
            + f"; 1,000 rules all firing {_f(g['firing_1000_us'], 0)} µs per sample"
        )
    h = r.get("soak")
    if h:
        o = h["options"]
        out.append(
            f"- Soak: {_f(h['seconds'], 0)} s, {o['concurrency']} dashboard slots (each dashboard lives "
            f"{_f(o['life_min'], 0)}-{_f(o['life_max'], 0)} s, then the slot reconnects): {h['opened']} opened, "
            f"{h['connections']} completed, {h['updates']} chart updates (latency p50 {_f(h['update_p50_ms'], 0)} / "
            f"p95 {_f(h['update_p95_ms'], 0)} ms); {h['api_requests']} API requests ("
            + ", ".join(f"{path} {count}" for path, count in sorted(h["api_by_path"].items()))
            + f"); server CPU {_f(h['cpu_percent'], 1)} % of a core, machine busy "
            f"{_f(h['machine_busy_percent'], 1)} %; RSS {_f(h['rss_start'] / MIB, 1)} MiB at start, "
            f"{_f(h['rss_before'] / MIB, 1)} after the warm-up ({h['warmup']['connections']} connections), "
            f"peak {_f(h['rss_peak'] / MIB, 1)}, {_f(h['rss_end'] / MIB, 1)} at the end of the load, "
            f"{_f(h['rss_after'] / MIB, 1)} after settling"
            + (f"; errors: {h['error_samples']}" if h["errors"] else "")
        )
    e = r.get("history")
    if e:
        out.append(
            f"- History: {e['series']} series, {e['minute_rows']} minute rows + {e['hour_rows']} hour rows, "
            f"database {e['db_mib']:.0f} MiB, filled in {e['fill_seconds']:.1f} s; points per answer: "
            + ", ".join(f"{k} {e[k]['points']}" for k in ("24h", "7d", "30d") if k in e)
        )
    out.append("")
    return out
