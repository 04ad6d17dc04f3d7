"""(k) Search: 100,000 audit events in a migrated SQLite database, indexed by the real rebuild (the code
`nox-ui search reindex` runs: database reads, documents, Whoosh, commit, publish), then searches of four
kinds through `SearchService`'s own synchronous path (parse, role filter, counts per type, one page of
20 hits with highlighted snippets), with the counts cache off so every search does all its work.

Alone: `python -m bench --only search` (a few minutes, most of it the indexing)."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.util import percentile

EVENTS = 100_000
QUERIES = 60  # of each kind
TARGET_P95_MS = 50.0
# Held to TARGET_P95_MS; "broad word" (in nearly every event) is shown, not held.
TARGET_KINDS = ("word", "prefix", "phrase", "fuzzy")

USERS = [
    "alice", "bruno", "chiara", "dmitri", "elena", "farid", "greta", "hiroshi", "ines", "jonas",
    "kamala", "lars", "mei", "nadia", "oskar", "priya", "quentin", "rosa", "stefan", "tariq",
    "ursula", "viktor", "wanda", "xavier", "yusuf", "zora", "amadou", "beatriz", "cosmin", "dalia",
    "emeka", "fiona", "goran", "helga", "ivo", "jasmin", "kofi", "lucia", "marek", "nora",
]  # fmt: skip
PROCESSES = [
    "nginx",
    "postgres",
    "python3",
    "node",
    "redis-server",
    "java",
    "sshd",
    "cron",
    "dockerd",
    "rsync",
]
RULES = ["High CPU on web", "Disk almost full", "Memory pressure", "Load average", "Swap in use", "No data"]
# (action, weight, target type): how often a panel's audit log says what.
ACTIONS = [
    ("auth.login.success", 40, "user"),
    ("auth.logout", 14, "user"),
    ("auth.login.failure", 8, "user"),
    ("auth.session.end", 6, "user"),
    ("process.signal", 5, "process"),
    ("alert.ack", 5, "alert"),
    ("access.denied", 4, "page"),
    ("auth.token.create", 3, "token"),
    ("alert.rule.update", 3, "rule"),
    ("user.update", 3, "user"),
    ("settings.update", 2, "settings"),
    ("alert.silence.create", 2, "silence"),
    ("notifier.update", 2, "notifier"),
    ("user.password", 2, "user"),
    ("auth.token.revoke", 1, "token"),
]
PHRASES = ['"token create"', '"rule update"', '"silence create"', '"notifier update"', '"user password"']


def _event(rng: random.Random, number: int, start: datetime) -> tuple[Any, ...]:
    action, _weight, target_type = rng.choices(ACTIONS, weights=[a[1] for a in ACTIONS])[0]
    actor = (
        USERS[min(int(rng.paretovariate(1.2)) - 1, len(USERS) - 1)]
        if rng.random() < 0.7
        else rng.choice(USERS)
    )
    ip = f"10.{rng.randint(0, 3)}.{rng.randint(0, 15)}.{rng.randint(1, 254)}"
    details: dict[str, Any] = {}
    if target_type == "user":
        target_id, label = str(USERS.index(actor) + 1), actor
        if action == "auth.login.failure":
            details = {"reason": rng.choice(["wrong password", "unknown user", "account disabled"])}
    elif target_type == "process":
        label = rng.choice(PROCESSES)
        target_id = str(rng.randint(300, 65000))
        details = {"signal": rng.choice(["TERM", "KILL"]), "outcome": "sent"}
    elif target_type in {"rule", "alert"}:
        label = f"{rng.choice(RULES)} {rng.randint(1, 12)}"
        target_id = str(rng.randint(1, 400))
    elif target_type == "page":
        label = rng.choice(["/admin/users", "/admin/settings", "/admin/audit", "/admin/plugins"])
        target_id = label
        details = {"reason": "this needs the admin role; you are viewer", "needs": "admin"}
    else:
        target_id, label = str(rng.randint(1, 300)), f"{target_type} {rng.randint(1, 50)}"
    ts = start + timedelta(seconds=number * 30)
    return (
        ts.isoformat(sep=" "),
        USERS.index(actor) + 1,
        actor,
        rng.choice(["admin", "operator", "viewer"]),
        ip,
        action,
        target_type,
        target_id,
        label,
        "failure" if action.endswith("failure") else ("denied" if action == "access.denied" else "success"),
        json.dumps(details, sort_keys=True),
        "0" * 64,
        f"{number:064x}",
    )


def _fill(db_file: Path, count: int) -> None:
    """Bulk insert (executemany, one transaction); the hash chain is not what is measured here."""
    rng = random.Random(11)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    connection = sqlite3.connect(db_file)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        connection.executemany(
            "INSERT INTO audit_events (ts, actor_id, actor_name, actor_role, source_ip, action, target_type, "
            "target_id, target_label, outcome, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (_event(rng, number, start) for number in range(1, count + 1)),
        )
        connection.commit()
    finally:
        connection.close()


def _typo(word: str, rng: random.Random) -> str:
    """One slip of the keyboard: two letters swapped (past the first), or one doubled."""
    i = rng.randint(1, len(word) - 2)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i] + word[i:]


def queries(rng: random.Random) -> dict[str, list[str]]:
    long_names = [u for u in USERS if len(u) >= 5]
    return {
        "word": [rng.choice(USERS) for _ in range(QUERIES)],
        "prefix": [rng.choice(USERS)[:3] + "*" for _ in range(QUERIES)],
        "phrase": [rng.choice(PHRASES) for _ in range(QUERIES)],
        "fuzzy": [_typo(rng.choice(long_names), rng) for _ in range(QUERIES)],
        "broad word": ["success" for _ in range(QUERIES // 4)],
    }


def run(workdir: Path, events: int = EVENTS) -> dict[str, Any]:
    from nox_ui.config import Settings
    from nox_ui.roles import PANEL
    from nox_ui.search.build import rebuild_index
    from nox_ui.search.index import IndexLayout
    from nox_ui.search.service import SearchService
    from nox_ui.server import prepare_core

    data_dir = workdir / "search-data"
    core = prepare_core(Settings(data_dir=data_dir, database_url=None))  # migrated schema, like `serve`
    try:
        _fill(data_dir / "nox.db", events)
        layout = IndexLayout(data_dir / "index")
        started = time.perf_counter()
        built = rebuild_index(core.db, layout)
        seconds = time.perf_counter() - started
        out: dict[str, Any] = {
            "events": events,
            "documents": built.documents,
            "index_seconds": seconds,
            "docs_per_second": built.documents / seconds,
            "index_mib": layout.size_bytes(built.build) / 2**20,
            "kinds": {},
        }
        service = SearchService.offline(core.db, layout)
        service.search_now(PANEL, "warm")  # opens the index, outside the timings
        for kind, texts in queries(random.Random(5)).items():
            times, totals, fuzzy = [], [], 0
            for text in texts:
                begun = time.perf_counter()
                result = service.search_now(PANEL, text)
                times.append((time.perf_counter() - begun) * 1000.0)
                totals.append(result.total)
                fuzzy += result.fuzzy
            out["kinds"][kind] = {
                "queries": len(texts),
                "p50_ms": percentile(times, 50),
                "p95_ms": percentile(times, 95),
                "mean_matches": sum(totals) / len(totals),
                "fuzzy": fuzzy,
                "example": texts[0],
            }
        service.close()
    finally:
        core.close()
    return out
