"""The full rebuild: every document from the database (and the in-memory registries) into a new build
folder, committed once, described by its meta file, then published with an atomic swap.

`nox-ui search reindex` runs it, and so does the panel, in a child process running that same command
(`--from-panel`), so a big rebuild's memory goes back to the system when it ends and the server never
imports the engine for it. While it runs, the published build (if any) stays usable; a running panel's
writer notices the new build id afterwards and catches up on what changed meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nox_ui.db import Database
from nox_ui.search.documents import (
    DB_GROUPS,
    TYPES,
    Document,
    audit_batches,
    audit_range,
    fingerprint_of,
    load_group,
    memory_groups,
)
from nox_ui.search.index import SCHEMA_VERSION, Build, IndexLayout, IndexMeta, engine

Progress = Callable[[float, str], None]  # (fraction done, what): a line for the CLI or the panel's log
PROGRESS_EVERY = 10_000  # audit events between two progress lines


@dataclass(frozen=True)
class Rebuilt:
    build: Build
    documents: int
    seconds: float


def rebuild_index(
    db: Database,
    layout: IndexLayout,
    *,
    progress: Progress | None = None,
    memory: Callable[[], dict[str, list[Document]]] = memory_groups,
) -> Rebuilt:
    """Build a complete index from what is committed now and publish it. Raises `IndexFull` (no space)
    or the database's error; a failed build leaves the published one as it was."""
    started = time.monotonic()
    report = progress or (lambda _fraction, _what: None)
    build_id, tmp = layout.new_tmp()
    try:
        builder = engine().create(tmp)
        try:
            with db.session() as session:
                # The audit range first: events committed after this are caught up by the panel.
                low, high, audit_count = audit_range(session)
                groups = {group: load_group(session, group) for group in DB_GROUPS}
            groups.update(memory())
            total = sum(len(docs) for docs in groups.values()) + audit_count
            done = 0
            for group, docs in groups.items():
                builder.add(docs)
                done += len(docs)
                label = TYPES.get(group, "plugin documents").lower()
                report(done / total if total else 1.0, f"{label}: {len(docs)}")
            with db.session() as session:
                indexed = 0
                next_report = PROGRESS_EVERY
                for batch in audit_batches(session, after=max(low - 1, 0), through=high):
                    builder.add(batch)
                    indexed += len(batch)
                    if indexed >= next_report or indexed == audit_count:
                        next_report += PROGRESS_EVERY
                        report((done + indexed) / total, f"audit events: {indexed} of {audit_count}")
                done += indexed
            builder.commit()
        except BaseException:
            builder.cancel()
            raise
        meta = IndexMeta(
            version=SCHEMA_VERSION,
            build_id=build_id,
            built_at=time.time(),
            audit_low=low,
            audit_high=high,
            fingerprints={group: fingerprint_of(docs) for group, docs in groups.items()},
            documents=done,
        )
        layout.write_meta(tmp, meta)
        build = layout.publish(build_id, tmp)
    except BaseException:
        layout.discard(tmp)
        raise
    return Rebuilt(build=build, documents=done, seconds=time.monotonic() - started)
