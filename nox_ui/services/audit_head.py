"""The audit log's anchored head, kept outside the database: a signed file in the data dir.

The hash chain alone shows an edited or deleted row in the middle, but not the newest rows being
deleted, nor a chain recomputed by someone who can write the database. `DATA_DIR/audit-head.json`
(0600) holds the newest anchored event's id and hash and how many events the log holds up to it,
signed with HMAC-SHA256 under a key derived from the panel's secret key (context
"nox-ui audit head v1"), so a copy of the database is not enough to move it.

It is rewritten atomically (temp file, fsync, rename) under an exclusive `flock` on
`DATA_DIR/audit-head.lock`, which excludes threads and processes alike (the server and the CLI).
The lock file also records that a head was written here ("anchored"), so a head deleted later is
told apart from the first start of an install that never had one.

While an archive commits, the head carries `archive`: the panel's signed word that exactly that
`audit.archive` event (its id and hash) moves the events up to `through_id`. A crash between the
archive's commit and the next head write then leaves no false alarm, and a checkpoint forged into
the database after the head cannot explain missing events, because it is not signed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nox_ui.crypto import sign
from nox_ui.durable import fsync_directory
from nox_ui.errors import Conflict

HEAD_FILE = "audit-head.json"
LOCK_FILE = "audit-head.lock"
CONTEXT = b"nox-ui audit head v1"
VERSION = 1
_ANCHORED = "anchored\n"
LOCK_WAIT = 10.0


@dataclass(frozen=True)
class PendingArchive:
    """An archive being committed: event `marker_id` (hash `marker_hash`) moves `count` events up to
    `through_id`, the last of them with hash `through_hash`."""

    marker_id: int
    marker_hash: str
    through_id: int
    through_hash: str
    count: int


@dataclass(frozen=True)
class Head:
    """The newest anchored event and the number of events in the log with an id up to its own."""

    last_id: int
    last_hash: str
    count: int
    archive: PendingArchive | None = None


class HeadUnreadable(Conflict):
    """No trustworthy head: the file is missing, is not a head, or its signature does not verify.

    A Conflict (409) where it reaches a caller (`resign_head`): the state on disk, not the request, is wrong."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AuditHead:
    """Reads, checks and writes the signed head file. `secret_key` signs; `previous_keys` still verify
    (the key a rotation is moving to, while it runs)."""

    def __init__(self, directory: Path, secret_key: str, previous_keys: Sequence[str | None] = ()) -> None:
        if not secret_key:
            raise ValueError("a secret key is required to sign the audit head")
        self.path = directory / HEAD_FILE
        self.lock_path = directory / LOCK_FILE
        self._keys = [secret_key, *(key for key in previous_keys if key and key != secret_key)]

    def rekey(self, secret_key: str) -> None:
        """Sign with `secret_key` from now on; heads signed under the keys held so far still verify."""
        if not secret_key:
            raise ValueError("a secret key is required to sign the audit head")
        self._keys = [secret_key, *(key for key in self._keys if key != secret_key)]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the head's lock. Never record an audit event while holding it: its update takes it too.

        Held for milliseconds; a holder that hangs (a suspended CLI) costs others LOCK_WAIT seconds and
        a `TimeoutError`, not a hung server: the head catches up at the next event."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the audit head lock {self.lock_path} is held too long") from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)

    def exists(self) -> bool:
        return self.path.exists()

    def was_written(self) -> bool:
        """Whether a head was ever written in this data dir (so a missing one was deleted)."""
        try:
            return self.lock_path.read_text(encoding="utf-8") == _ANCHORED
        except OSError:
            return False

    def read(self, also: Iterable[str] = ()) -> Head:
        """The head, if its signature verifies under a key held (or one of `also`)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise HeadUnreadable("missing", f"the audit head file {self.path} is missing") from None
        except OSError as exc:
            raise HeadUnreadable(
                "unreadable", f"the audit head file {self.path} cannot be read: {exc.strerror or exc}"
            ) from None
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        head = _parse(document)
        if head is None or not isinstance(document, dict):
            raise HeadUnreadable("malformed", f"the audit head file {self.path} is not a signed audit head")
        message = _message(head)
        signature = str(document["signature"])
        keys = [*self._keys, *(key for key in also if key)]
        if not any(hmac.compare_digest(sign(key, CONTEXT, message), signature) for key in keys):
            raise HeadUnreadable(
                "signature",
                f"the audit head file {self.path} has a bad signature "
                "(forged, or signed with another secret key)",
            )
        return head

    def write(self, head: Head) -> None:
        """Replace the head atomically and durably. Call with the lock held."""
        document = {**_body(head), "signature": sign(self._keys[0], CONTEXT, _message(head))}
        data = (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8")
        partial = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)
        fsync_directory(self.path.parent)
        if not self.was_written():
            with open(self.lock_path, "w", encoding="utf-8") as marker:
                marker.write(_ANCHORED)
                marker.flush()
                os.fsync(marker.fileno())


def _body(head: Head) -> dict[str, Any]:
    return {
        "version": VERSION,
        "last_id": head.last_id,
        "last_hash": head.last_hash,
        "count": head.count,
        "archive": asdict(head.archive) if head.archive is not None else None,
    }


def _message(head: Head) -> bytes:
    return json.dumps(_body(head), sort_keys=True, separators=(",", ":")).encode("utf-8")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse(document: object) -> Head | None:
    """A head from the file's JSON, if every field is there with its type; else None."""
    if not isinstance(document, dict) or set(document) != {*_body(Head(0, "", 0)), "signature"}:
        return None
    if document["version"] != VERSION or not isinstance(document["signature"], str):
        return None
    last_id, last_hash, count = document["last_id"], document["last_hash"], document["count"]
    if not (_is_int(last_id) and _is_int(count) and isinstance(last_hash, str)):
        return None
    archive = document["archive"]
    pending: PendingArchive | None = None
    if archive is not None:
        fields = ("marker_id", "marker_hash", "through_id", "through_hash", "count")
        if not isinstance(archive, dict) or set(archive) != set(fields):
            return None
        if not all(_is_int(archive[name]) for name in ("marker_id", "through_id", "count")):
            return None
        if not all(isinstance(archive[name], str) for name in ("marker_hash", "through_hash")):
            return None
        pending = PendingArchive(**archive)
    return Head(last_id=last_id, last_hash=last_hash, count=count, archive=pending)
