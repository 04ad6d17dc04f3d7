"""Notifiers and the delivery queue. UI-free.

`NotifierService` manages notifiers (one kind each; see `kinds/` for the kinds and their configs) with
role checks and audit events, and is the `Dispatcher` the alert engine hands its messages to.

`DeliveryQueue` runs in its own thread with its own asyncio loop, so nothing it does (a slow SMTP
server, a webhook that times out, a database write) can hold up sampling or the pages:

```
engine ── dispatch(message, ids) ──► intake (deque; returns at once)
                                        │ worker loop, thread "nox-delivery"
                                        ▼
            one `Delivery` row per notifier (status pending) ──► send (httpx / smtplib / apprise)
                 ▲                                                  │
                 └──── failed: attempts+1, error line, next_attempt_at = now + backoff ◄──┘
                       (2, 4, 8, ... s up to `backoff_max`; after `max_attempts`: failed)
```

Every attempt is written to the row, so the delivery log shows what happened: `attempts`, `status`,
`sent_at`, and `error`, one line per failed attempt (`attempt N at <UTC time>: <what went wrong>`,
secrets scrubbed; a status code or an error class, never what the target answered). Pending rows are
picked up again when the queue starts, so a restart loses nothing that reached the database; the
message is then rebuilt from the alert and its rule. A test message (event `test`) is tried once, so
the person testing sees the real outcome at once. A target the outbound guard refuses, or a secret
that cannot be decrypted, fails at once: retrying cannot help.

Notifier secrets are stored encrypted (`kinds.seal`); the queue decrypts them only to send.

The worker thread is the supervisor's job "delivery": a round of the loop that fails is reported (and
the loop goes on), a crash of the loop itself is logged and the worker started again after a backoff;
its writes are tried again while the database is busy.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

if TYPE_CHECKING:
    import httpx

from nox_ui.alerts import channels, kinds
from nox_ui.alerts.messages import AlertMessage
from nox_ui.crypto import SecretBox, SecretUnreadable
from nox_ui.db import Database, retry_busy
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.models import Alert, AlertRule, AlertRuleNotifier, Delivery, Notifier, utcnow
from nox_ui.outbound import OutboundGuard
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import RuntimeSettings
from nox_ui.services.audit import AuditService
from nox_ui.supervisor import Supervisor

PENDING, SENT, FAILED = "pending", "sent", "failed"
JOB = "delivery"  # the supervisor names its thread "nox-delivery": channels.DELIVERY_THREAD_PREFIX
INTAKE_RETRY_SECONDS = 5.0
EVENTS = ("firing", "resolved", "repeat", "test")
MAX_NAME = 128
MAX_ERROR_CHARS = 4000
TEST_RULE_NAME = "Test notification"


def event_of(message: AlertMessage) -> str:
    """The delivery event a message is: a test has no rule and no alert; a reminder while firing is
    `repeat`. (A message about an episode whose rule was just deleted has a rule id but no alert id.)"""
    if message.rule_id is None and message.alert_id is None:
        return "test"
    if message.repeat:
        return "repeat"
    return "resolved" if message.state == "resolved" else "firing"


def make_test_message(notifier_name: str, requested_by: str, url: str) -> AlertMessage:
    now = utcnow()
    return AlertMessage(
        rule_id=None,
        rule_name=TEST_RULE_NAME,
        state="firing",
        severity="info",
        metric="nox.test",
        labels={"notifier": notifier_name},
        value=1.0,
        threshold=0.0,
        started_at=now,
        ended_at=None,
        url=url,
        description=f"A test of the notifier {notifier_name!r}, sent by {requested_by} from Nox UI. "
        "If you can read this, it works.",
    )


@dataclass(frozen=True)
class NotifierView:
    """A notifier as the API and the UI show it: `config` carries no secret (see `kinds.public_config`)."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    available: bool = True  # False while its kind is not registered (its plugin disabled or removed)


@dataclass(frozen=True)
class DeliveryView:
    """One line of the delivery log."""

    id: int
    alert_id: int | None
    notifier_id: int
    notifier_name: str
    notifier_kind: str
    event: str
    status: str
    attempts: int
    error: str
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None

    @property
    def last_error(self) -> str:
        """What went wrong the last time, without the log line's `attempt N at <time>: ` prefix."""
        lines = self.error.strip().splitlines()
        if not lines:
            return ""
        head, sep, rest = lines[-1].partition(": ")
        return rest if sep and head.startswith("attempt ") else lines[-1]


def _delivery_view(row: Delivery, notifier: Notifier | None) -> DeliveryView:
    assert row.id is not None
    return DeliveryView(
        id=row.id,
        alert_id=row.alert_id,
        notifier_id=row.notifier_id,
        notifier_name=notifier.name if notifier else "",
        notifier_kind=notifier.kind if notifier else "",
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        error=row.error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
    )


def _stored_config(notifier: Notifier) -> dict[str, Any]:
    try:
        config = json.loads(notifier.config)
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def restore_message(
    session: Session, delivery: Delivery, link: Callable[[int | None], str]
) -> AlertMessage | None:
    """Rebuild the message of a pending delivery from the database (after a restart), or None when its
    alert is gone."""
    if delivery.alert_id is None and delivery.event != "test":
        return None  # the episode of a deleted rule: its facts were only in memory
    if delivery.alert_id is None:
        notifier = session.get(Notifier, delivery.notifier_id)
        return make_test_message(notifier.name if notifier else "", "an earlier run", link(None))
    alert = session.get(Alert, delivery.alert_id)
    rule = session.get(AlertRule, alert.rule_id) if alert else None
    if alert is None or rule is None:
        return None
    labels = alert.labels
    resolved = delivery.event == "resolved"
    return AlertMessage(
        rule_id=rule.id,
        rule_name=rule.name,
        state="resolved" if resolved else "firing",
        severity=alert.severity,
        metric=alert.series,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        value=alert.value,
        threshold=alert.threshold,
        started_at=alert.fired_at,
        ended_at=alert.resolved_at if resolved else None,
        url=link(alert.id),
        description=rule.description,
        alert_id=alert.id,
        repeat=delivery.event == "repeat",
    )


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    event: str
    notifier_name: str
    kind: str
    config: dict[str, Any]
    message: AlertMessage | None


@dataclass(frozen=True)
class _After:
    """Not yet: an earlier message of the same alert to the same notifier is still being retried."""

    delivery_id: int
    due: float


@dataclass(frozen=True)
class _Outcome:
    status: str
    attempts: int
    next_attempt_at: datetime | None


class DeliveryQueue:
    """The asynchronous, retrying sender. Implements `Dispatcher`; see the module docstring.

    `smtp` returns the current runtime settings (read at each email, and for `notify_allowed_hosts`);
    `link(alert_id)` builds the panel link of a message rebuilt after a restart; `secrets` decrypts the
    stored notifier secrets; `outbound` guards every connection (by default one reading
    `notify_allowed_hosts` from `smtp()`). The retry policy: attempt n failed → wait
    `min(backoff * 2**(n-1), backoff_max)` seconds, at most `max_attempts` attempts (tests use 0.05 s).
    """

    stop_timeout = 5.0

    def __init__(
        self,
        db: Database,
        smtp: Callable[[], RuntimeSettings],
        *,
        link: Callable[[int | None], str],
        backoff: float = 2.0,
        backoff_max: float = 300.0,
        max_attempts: int = 6,
        timeout: float = 10.0,
        concurrency: int = 8,
        secrets: SecretBox | None = None,
        outbound: OutboundGuard | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        if backoff <= 0 or backoff_max < backoff or max_attempts < 1 or timeout <= 0 or concurrency < 1:
            raise ValueError("invalid delivery queue policy")
        self.supervisor = supervisor or Supervisor()
        self.db = db
        self.smtp = smtp
        self.link = link
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.concurrency = concurrency
        self.secrets = secrets
        self.outbound = outbound or OutboundGuard(lambda: smtp().notify_allowed_hosts)
        # Shared with other threads (deque appends and pops are atomic).
        self._intake: deque[tuple[AlertMessage, list[int]]] = deque()
        self._handoff: deque[tuple[int, AlertMessage | None]] = deque()
        self._lock = threading.Lock()
        self._waiters: dict[int, list[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running worker's (the supervisor hands each run its own)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        # Owned by the worker loop.
        self._messages: dict[int, AlertMessage] = {}
        self._due: dict[int, float] = {}
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread under the supervisor (idempotent); it first picks up every pending
        delivery, and is running when this returns."""
        if self.running():
            return
        channels.keep_delivery_requests_out_of_logs()
        self._started.clear()
        self.supervisor.thread(JOB, self.run, wake=self._wake_up)
        self._started.wait(5.0)

    def stop(self) -> None:
        """Stop the worker (waiting up to `stop_timeout` s); a send in progress is abandoned and its
        delivery stays pending. No parameters: NiceGUI passes the app to a shutdown handler that has one."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake_up()
        thread.join(self.stop_timeout)
        self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- feeding ---------------------------------------------------------------------------------

    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        """Queue `message` for each notifier and return at once, from any thread; never raises.
        The worker writes the delivery rows (unknown notifier ids are skipped) and sends them."""
        try:
            ids = list(dict.fromkeys(int(i) for i in notifier_ids))
            if ids:
                self._intake.append((message, ids))
                self._wake_up()
        except Exception:
            logger.exception("could not queue the notification of {!r}", message.rule_name)

    def schedule(self, delivery_id: int, message: AlertMessage | None = None) -> None:
        """Send an already written pending delivery now (`message` None: rebuild it from the database)."""
        self._handoff.append((delivery_id, message))
        self._wake_up()

    def wait(self, delivery_id: int, timeout: float) -> Delivery | None:
        """Block until the delivery is sent or failed, or `timeout` passes; its row (None if gone)."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(delivery_id, []).append(event)
        try:
            row = self._get(delivery_id)
            if row is None or row.status != PENDING:
                return row
            event.wait(timeout)
            return self._get(delivery_id)
        finally:
            with self._lock:
                waiting = self._waiters.get(delivery_id, [])
                if event in waiting:
                    waiting.remove(event)
                if not waiting:
                    self._waiters.pop(delivery_id, None)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after `attempts` failed attempts."""
        return float(min(self.backoff * 2 ** (attempts - 1), self.backoff_max))

    # -- worker ----------------------------------------------------------------------------------

    def _get(self, delivery_id: int) -> Delivery | None:
        with self.db.session() as session:
            return session.get(Delivery, delivery_id)

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop just closed: nothing left to wake
                loop.call_soon_threadsafe(wake.set)

    def run(self, stop: threading.Event) -> None:
        """The worker (the supervisor's job "delivery", in its thread): its own event loop until `stop`
        is set. Raises when the loop itself crashes, and the supervisor starts it again."""
        self._thread, self._stop = threading.current_thread(), stop
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(
            max_workers=self.concurrency + 2, thread_name_prefix=f"{channels.DELIVERY_THREAD_PREFIX}-io"
        )
        loop.set_default_executor(executor)
        try:
            loop.run_until_complete(self._main())
        finally:
            self._loop = None
            self._wake = None
            self._started.set()
            # A send still running in a worker thread finishes (its delivery stays pending and is sent
            # again at the next start: at least once); `stop` waits for it only up to `stop_timeout`.
            executor.shutdown(wait=True, cancel_futures=True)
            loop.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._due.clear()
        self._inflight.clear()
        self._started.set()
        limit = asyncio.Semaphore(self.concurrency)
        # The HTTP client is made on the first webhook (see _http) and closed on the way out.
        try:
            await self._recover()
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    await self._take_new()
                    self._start_due(limit)
                except Exception as exc:
                    self.supervisor.report(JOB, exc)
                    await asyncio.sleep(1.0)
                else:
                    self.supervisor.report(JOB, None)
                await self._sleep()
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
            self._client = None
            await self._persist_intake()

    def _http(self) -> httpx.AsyncClient:
        """The worker's HTTP client, made on first use: a panel without webhooks never loads httpx or
        builds its TLS context (a few MiB)."""
        if self._client is None:
            # A webhook's redirect is reported, not followed: receivers answer where they are asked.
            self._client = self.outbound.async_client(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def _persist_intake(self) -> None:
        """On the way out: messages dispatched just before `stop` (the engine's last ones) become
        pending rows, sent at the next start."""
        try:
            if self._intake:
                await self._take_new()
        except Exception:
            logger.exception("{} notifications queued at shutdown were lost", len(self._intake))

    async def _recover(self) -> None:
        def pending() -> list[tuple[int, float]]:
            with self.db.session() as session:
                rows = session.exec(select(Delivery).where(Delivery.status == PENDING)).all()
            return [(r.id or 0, r.next_attempt_at.timestamp() if r.next_attempt_at else 0.0) for r in rows]

        try:
            found = await asyncio.to_thread(pending)
        except Exception:
            logger.exception("could not read pending deliveries; they are picked up at the next start")
            return
        for delivery_id, due in found:
            self._due[delivery_id] = due
        if found:
            logger.info("resuming {} pending notification deliveries", len(found))

    async def _take_new(self) -> None:
        batch: list[tuple[AlertMessage, list[int]]] = []
        while self._intake:
            batch.append(self._intake.popleft())
        now = time.time()
        if batch:
            try:
                written = await asyncio.to_thread(self._write, batch)
            except Exception:
                # The database is busy or failing: keep the messages for the next round, in order.
                self._intake.extendleft(reversed(batch))
                raise
            for delivery_id, message in written:
                self._messages[delivery_id] = message
                self._due[delivery_id] = now
        while self._handoff:
            delivery_id, given = self._handoff.popleft()
            if given is not None:
                self._messages[delivery_id] = given
            if delivery_id not in self._inflight:
                self._due[delivery_id] = now

    def _write(self, batch: list[tuple[AlertMessage, list[int]]]) -> list[tuple[int, AlertMessage]]:
        """One pending row per (message, known notifier), in one transaction; row by row if that fails."""
        wanted = {i for _message, ids in batch for i in ids}
        with self.db.session() as session:
            known = set(session.exec(select(Notifier.id).where(col(Notifier.id).in_(wanted))).all())
        for unknown in sorted(wanted - known):
            logger.warning("notifier {} does not exist; its notifications are skipped", unknown)
        pairs = [(message, i) for message, ids in batch for i in ids if i in known]

        def insert(chunk: list[tuple[AlertMessage, int]]) -> list[tuple[int, AlertMessage]]:
            with self.db.session() as session:
                rows = [
                    (
                        Delivery(alert_id=m.alert_id, notifier_id=i, event=event_of(m), status=PENDING),
                        m,
                    )
                    for m, i in chunk
                ]
                session.add_all([row for row, _m in rows])
                session.commit()
                return [(row.id or 0, m) for row, m in rows]

        try:
            return retry_busy(lambda: insert(pairs))  # one transaction each: safe to run again
        except IntegrityError:
            written = []
            for pair in pairs:
                try:
                    written += retry_busy(functools.partial(insert, [pair]))
                except IntegrityError:
                    logger.warning(
                        "notification of {!r} to notifier {} skipped: its alert {} is not in the database",
                        pair[0].rule_name,
                        pair[1],
                        pair[0].alert_id,
                    )
            return written

    def _start_due(self, limit: asyncio.Semaphore) -> None:
        assert self._loop is not None
        now = time.time()
        for delivery_id, due in list(self._due.items()):
            if due <= now and delivery_id not in self._inflight:
                del self._due[delivery_id]
                self._inflight[delivery_id] = self._loop.create_task(
                    self._attempt(delivery_id, limit), name=f"delivery {delivery_id}"
                )

    async def _sleep(self) -> None:
        assert self._wake is not None
        timeout = max(0.0, min(self._due.values()) - time.time()) if self._due else None
        if self._intake:  # messages a failed round put back (the database busy or full): again soon
            timeout = min(timeout, INTAKE_RETRY_SECONDS) if timeout is not None else INTAKE_RETRY_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _attempt(self, delivery_id: int, limit: asyncio.Semaphore) -> None:
        try:
            async with limit:
                job = await asyncio.to_thread(self._load, delivery_id, delivery_id not in self._messages)
                if job is None:
                    self._settled(delivery_id)
                    return
                if isinstance(job, _After):
                    # A receiver sees an alert's messages in order: a resolved message waits for
                    # the firing one still being retried (it goes once that one is sent or failed).
                    self._due[delivery_id] = max(job.due, time.time()) + 0.05
                    return
                message = self._messages.get(delivery_id) or job.message
                if message is not None:
                    self._messages[delivery_id] = message
                error, permanent = await self._send(job, message)
                outcome = await asyncio.to_thread(
                    retry_busy, lambda: self._record(delivery_id, error, permanent)
                )
            self._after(job, outcome, error)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("delivery {} could not be attempted; retrying later", delivery_id)
            self._due[delivery_id] = time.time() + self.delay(1)
        finally:
            self._inflight.pop(delivery_id, None)
            if self._wake is not None:
                self._wake.set()

    def _load(self, delivery_id: int, restore: bool) -> _Job | _After | None:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            if row is None or row.status != PENDING:
                return None
            if row.alert_id is not None:
                earlier = session.exec(
                    select(Delivery)
                    .where(
                        Delivery.alert_id == row.alert_id,
                        Delivery.notifier_id == row.notifier_id,
                        Delivery.status == PENDING,
                        col(Delivery.id) < delivery_id,
                    )
                    .order_by(col(Delivery.id))
                    .limit(1)
                ).first()
                if earlier is not None:
                    due = earlier.next_attempt_at.timestamp() if earlier.next_attempt_at else time.time()
                    return _After(earlier.id or 0, due)
            notifier = session.get(Notifier, row.notifier_id)
            if notifier is None:
                return None
            message = restore_message(session, row, self.link) if restore else None
            return _Job(
                delivery_id=delivery_id,
                event=row.event,
                notifier_name=notifier.name,
                kind=notifier.kind,
                config=_stored_config(notifier),
                message=message,
            )

    async def _send(self, job: _Job, message: AlertMessage | None) -> tuple[str | None, bool]:
        """None when it went through, else the error and whether retrying is pointless."""
        if message is None:
            return "the alert of this notification no longer exists", True
        try:
            config = kinds.unseal(job.kind, job.config, self.secrets)
        except SecretUnreadable as exc:
            return str(exc), True
        kind = kinds.find(job.kind)
        if kind is None:
            return f"unknown notifier kind {job.kind!r}", True
        settings = self.smtp()
        secrets = kind.secrets(config) + kind.send_secrets(settings)
        channels.remember_secrets(f"notifier {job.notifier_name}", secrets)
        context = kinds.SendContext(
            http=self._http,
            settings=settings,
            outbound=self.outbound,
            timeout=self.timeout,
            event=job.event,
            delivery_id=job.delivery_id,
        )
        try:
            await kind.send(config, message, context)
        except channels.DeliveryError as exc:
            return channels.scrub(str(exc), secrets) or "failed", exc.permanent
        except Exception as exc:  # a bug or an unexpected library error: its class here, the rest logged
            logger.warning(
                "notification {} to {!r} hit an unexpected error: {}",
                job.delivery_id,
                job.notifier_name,
                channels.scrub(f"{type(exc).__name__}: {exc}", secrets),
            )
            return channels.error_class(exc), False
        return None, False

    def _record(self, delivery_id: int, error: str | None, permanent: bool) -> _Outcome | None:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            if row is None:
                return None
            now = utcnow()
            row.attempts += 1
            if error is None:
                row.status, row.sent_at, row.next_attempt_at = SENT, now, None
            else:
                line = f"attempt {row.attempts} at {now.isoformat(timespec='milliseconds')}: {error}"
                row.error = _append_line(row.error, line)
                attempts_allowed = 1 if row.event == "test" else self.max_attempts
                if permanent or row.attempts >= attempts_allowed:
                    row.status, row.next_attempt_at = FAILED, None
                else:
                    row.next_attempt_at = now + timedelta(seconds=self.delay(row.attempts))
            session.add(row)
            session.commit()
            return _Outcome(status=row.status, attempts=row.attempts, next_attempt_at=row.next_attempt_at)

    def _after(self, job: _Job, outcome: _Outcome | None, error: str | None) -> None:
        delivery_id = job.delivery_id
        if outcome is None:
            self._settled(delivery_id)
            return
        if outcome.status == SENT:
            logger.info("notification {} ({}) sent to {!r}", delivery_id, job.event, job.notifier_name)
            self._settled(delivery_id)
        elif outcome.status == FAILED:
            logger.warning(
                "notification {} ({}) to {!r} failed for good after {} attempt(s): {}",
                delivery_id,
                job.event,
                job.notifier_name,
                outcome.attempts,
                error,
            )
            self._settled(delivery_id)
        else:
            assert outcome.next_attempt_at is not None
            retry_in = outcome.next_attempt_at.timestamp() - time.time()
            logger.warning(
                "notification {} ({}) to {!r} failed (attempt {} of {}): {}; retrying in {:.1f} s",
                delivery_id,
                job.event,
                job.notifier_name,
                outcome.attempts,
                self.max_attempts,
                error,
                max(0.0, retry_in),
            )
            self._due[delivery_id] = outcome.next_attempt_at.timestamp()

    def _settled(self, delivery_id: int) -> None:
        self._messages.pop(delivery_id, None)
        with self._lock:
            for event in self._waiters.get(delivery_id, []):
                event.set()


def _append_line(log: str, line: str) -> str:
    text = f"{log}\n{line}" if log else line
    if len(text) <= MAX_ERROR_CHARS:
        return text
    lines = text.splitlines()
    while len(lines) > 1 and len("\n".join(lines)) > MAX_ERROR_CHARS:
        lines.pop(0)
    return "\n".join(lines)[-MAX_ERROR_CHARS:]


def clean_name(name: Any) -> str:
    if not isinstance(name, str):
        raise Invalid("name must be a string")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise Invalid(f"name must be 1 to {MAX_NAME} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise Invalid("name must be one line of text")
    return name


class NotifierService:
    """Notifiers: create/update/delete/test (operator or admin), audited. Their details and the delivery
    log are for operators and admins too (the API and the page check it); `list` also feeds the names
    shown next to rules.

    Mutating methods take `actor` (the panel itself or the CLI: a `Principal.system`). The
    service is also the engine's `Dispatcher` (`dispatch` hands over to `queue`). `secrets` encrypts
    the notifiers' secrets at rest; `outbound` (default: one reading `notify_allowed_hosts`) refuses
    internal targets when a notifier is saved and guards every send."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        smtp: Callable[[], RuntimeSettings],
        *,
        base_url: str,
        secrets: SecretBox,
        queue: DeliveryQueue | None = None,
        outbound: OutboundGuard | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.outbound = outbound or OutboundGuard(lambda: smtp().notify_allowed_hosts)
        self.queue = queue or DeliveryQueue(
            db, smtp, link=self.alert_link, secrets=secrets, outbound=self.outbound, supervisor=supervisor
        )

    def alert_link(self, alert_id: int | None) -> str:
        """The panel link a message carries: the alert on /alerts, or /alerts itself."""
        return f"{self.base_url}/alerts?id={alert_id}" if alert_id is not None else f"{self.base_url}/alerts"

    # -- Dispatcher --------------------------------------------------------------------------------

    def dispatch(self, message: AlertMessage, notifier_ids: list[int]) -> None:
        self.queue.dispatch(message, notifier_ids)

    # -- reading -----------------------------------------------------------------------------------

    def list(self) -> list[NotifierView]:
        with self.db.session() as session:
            rows = session.exec(select(Notifier).order_by(col(Notifier.name))).all()
        return [self._view(row) for row in rows]

    def get(self, notifier_id: int) -> NotifierView:
        return self._view(self._row(notifier_id))

    def known_ids(self, ids: Iterable[int]) -> builtins.list[int]:
        """Which of `ids` are notifiers (for validating a rule's notifier list)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        with self.db.session() as session:
            found = set(session.exec(select(Notifier.id).where(col(Notifier.id).in_(wanted))).all())
        return [i for i in wanted if i in found]

    def _row(self, notifier_id: int) -> Notifier:
        with self.db.session() as session:
            row = session.get(Notifier, notifier_id)
        if row is None:
            raise NotFound(f"no notifier with id {notifier_id}")
        return row

    @staticmethod
    def _view(row: Notifier) -> NotifierView:
        assert row.id is not None
        return NotifierView(
            id=row.id,
            name=row.name,
            kind=row.kind,
            config=kinds.shown_config(row.kind, _stored_config(row)),
            created_at=row.created_at,
            updated_at=row.updated_at,
            available=kinds.find(row.kind) is not None,
        )

    # -- changing ----------------------------------------------------------------------------------

    def _authorize(self, actor: Principal, action: str, target: str, ip: str) -> None:
        self.audit.authorize(
            actor, Role.OPERATOR, attempted=action, target_type="notifier", target_label=target, ip=ip
        )

    @staticmethod
    def _name_taken(session: Session, name: str, other_than: int | None = None) -> bool:
        query = select(Notifier.id).where(Notifier.name == name)
        if other_than is not None:
            query = query.where(Notifier.id != other_than)
        return session.exec(query).first() is not None

    def create(
        self, actor: Principal, name: str, kind: str, config: Mapping[str, Any], *, ip: str = ""
    ) -> NotifierView:
        """Invalid name, kind or config: `Invalid` (422); a name in use: `Conflict` (409)."""
        self._authorize(actor, "notifier.create", str(name), ip)
        name = clean_name(name)
        kind = kinds.check_kind(kind)
        stored = kinds.parse_config(kind, config)
        kinds.check_targets(kind, stored, self.outbound)
        sealed = kinds.seal(kind, stored, self.secrets)
        row = Notifier(name=name, kind=kind, config=json.dumps(sealed, sort_keys=True))
        with self.db.session() as session:
            if self._name_taken(session, name):
                raise Conflict(f"a notifier named {name!r} already exists")
            session.add(row)
            try:
                session.flush()
                self.audit.record(
                    session,
                    actor=actor,
                    action="notifier.create",
                    outcome="success",
                    target_type="notifier",
                    target_id=row.id or "",
                    target_label=name,
                    details={"kind": kind, "config": kinds.public_config(kind, stored)},
                    ip=ip,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(f"a notifier named {name!r} already exists") from None
            session.refresh(row)
        return self._view(row)

    def update(
        self,
        actor: Principal,
        notifier_id: int,
        *,
        name: str | None = None,
        kind: str | None = None,
        config: Mapping[str, Any] | None = None,
        ip: str = "",
    ) -> NotifierView:
        """Only what is given changes. `config` fields left out keep their stored value (a secret need not
        be sent again); a new `kind` needs a whole `config` for it."""
        current = self._row(notifier_id)
        self._authorize(actor, "notifier.update", current.name, ip)
        new_name = clean_name(name) if name is not None else current.name
        new_kind = kinds.check_kind(kind) if kind is not None else current.kind
        raw = _stored_config(current)
        unreadable = False
        try:
            stored = kinds.unseal(current.kind, raw, self.secrets)
        except SecretUnreadable:
            # a config given must then be whole; none given leaves the stored one as it is
            stored, unreadable = {}, True
        keep_raw = unreadable and config is None and new_kind == current.kind
        if new_kind != current.kind:
            if config is None:
                raise Invalid(f"changing the kind to {new_kind} needs a config for it")
            new_config = kinds.parse_config(new_kind, config)
        elif config is not None:
            new_config = kinds.merge_config(new_kind, stored, config)
        else:
            new_config = stored
        changed = [
            key
            for key, old, new in (("name", current.name, new_name), ("kind", current.kind, new_kind))
            if old != new
        ]
        changed += sorted(
            f"config.{key}"
            for key in set(stored) | set(new_config)
            if stored.get(key) != new_config.get(key) or new_kind != current.kind
        )
        if not changed:
            return self._view(current)
        if new_config != stored or new_kind != current.kind:
            kinds.check_targets(new_kind, new_config, self.outbound)
        with self.db.session() as session:
            row = session.get(Notifier, notifier_id)
            if row is None:
                raise NotFound(f"no notifier with id {notifier_id}")
            if new_name != row.name and self._name_taken(session, new_name, other_than=notifier_id):
                raise Conflict(f"a notifier named {new_name!r} already exists")
            row.name, row.kind = new_name, new_kind
            if not keep_raw:
                row.config = json.dumps(kinds.seal(new_kind, new_config, self.secrets), sort_keys=True)
            row.updated_at = utcnow()
            session.add(row)
            try:
                session.flush()
                self.audit.record(
                    session,
                    actor=actor,
                    action="notifier.update",
                    outcome="success",
                    target_type="notifier",
                    target_id=notifier_id,
                    target_label=new_name,
                    details={
                        "changed": changed,
                        "kind": new_kind,
                        "config": kinds.shown_config(current.kind, raw)
                        if keep_raw
                        else kinds.public_config(new_kind, new_config),
                        **({"renamed_from": current.name} if new_name != current.name else {}),
                    },
                    ip=ip,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(f"a notifier named {new_name!r} already exists") from None
            session.refresh(row)
        return self._view(row)

    def reencrypt_secrets(self, session: Session, box: SecretBox) -> int:
        """Re-encrypt every notifier's secrets under `box`'s current key (it decrypts with its previous
        keys too; plain text from before encryption is encrypted), in the caller's transaction (key
        rotation); returns how many notifiers with secrets were rewritten. Raises `SecretUnreadable`
        when a stored value opens with none of `box`'s keys."""
        rows = session.exec(select(Notifier).where(col(Notifier.kind).in_(kinds.sealed_kinds()))).all()
        for row in rows:
            plain = kinds.unseal(row.kind, _stored_config(row), box)
            row.config = json.dumps(kinds.seal(row.kind, plain, box), sort_keys=True)
            session.add(row)
        return len(rows)

    def delete(self, actor: Principal, notifier_id: int, *, ip: str = "") -> None:
        """Its delivery log and its place in every rule go with it (ON DELETE CASCADE)."""
        current = self._row(notifier_id)
        self._authorize(actor, "notifier.delete", current.name, ip)
        with self.db.session() as session:
            row = session.get(Notifier, notifier_id)
            if row is None:
                raise NotFound(f"no notifier with id {notifier_id}")
            used_by = list(
                session.exec(
                    select(AlertRule.name)
                    .join(AlertRuleNotifier)
                    .where(AlertRuleNotifier.notifier_id == notifier_id)
                    .order_by(col(AlertRule.name))
                ).all()
            )
            session.delete(row)
            self.audit.record(
                session,
                actor=actor,
                action="notifier.delete",
                outcome="success",
                target_type="notifier",
                target_id=notifier_id,
                target_label=row.name,
                details={"kind": row.kind, "used_by_rules": used_by},
                ip=ip,
            )
            session.commit()

    # -- testing and the delivery log ----------------------------------------------------------

    def send_test(self, actor: Principal, notifier_id: int, *, ip: str = "") -> DeliveryView:
        """Queue a test message (event `test`, one attempt) and return its pending delivery; follow it
        with `wait_for_delivery`. Audited as `notifier.test`."""
        current = self._row(notifier_id)
        self._authorize(actor, "notifier.test", current.name, ip)
        message = make_test_message(
            current.name, "the panel" if actor.is_system else actor.username, self.alert_link(None)
        )
        with self.db.session() as session:
            row = Delivery(alert_id=None, notifier_id=notifier_id, event="test", status=PENDING)
            session.add(row)
            session.flush()
            self.audit.record(
                session,
                actor=actor,
                action="notifier.test",
                outcome="success",
                target_type="notifier",
                target_id=notifier_id,
                target_label=current.name,
                details={"delivery_id": row.id},
                ip=ip,
            )
            session.commit()
            session.refresh(row)
        assert row.id is not None
        self.queue.schedule(row.id, message)
        return _delivery_view(row, current)

    def wait_for_delivery(self, delivery_id: int, timeout: float) -> DeliveryView:
        """Block up to `timeout` seconds until the delivery is sent or failed; it as it then is."""
        self.queue.wait(delivery_id, timeout)
        return self.delivery(delivery_id)

    def delivery(self, delivery_id: int) -> DeliveryView:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            notifier = session.get(Notifier, row.notifier_id) if row else None
        if row is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        return _delivery_view(row, notifier)

    def deliveries_for_alert(self, alert_id: int, limit: int = 200) -> builtins.list[DeliveryView]:
        """The delivery log of one alert episode, oldest first."""
        return list(reversed(self.recent_deliveries(limit, alert_id=alert_id)))

    def prune_orphan_deliveries(self, before: datetime) -> int:
        """Delete finished deliveries that belong to no alert (notifier tests, the last message of a
        deleted rule) created before `before`; an alert's deliveries go with the alert (see
        `nox_ui.alerts.retention.prune_resolved`). Returns how many went."""
        with self.db.session() as session:
            result = session.execute(
                delete(Delivery).where(
                    col(Delivery.alert_id).is_(None),
                    col(Delivery.status) != PENDING,
                    col(Delivery.created_at) < before,
                )
            )
            session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    def recent_deliveries(
        self, limit: int = 100, *, notifier_id: int | None = None, alert_id: int | None = None
    ) -> builtins.list[DeliveryView]:
        """The newest deliveries first, optionally of one notifier and/or one alert."""
        limit = max(1, min(int(limit), 1000))
        query = select(Delivery, Notifier).join(Notifier, col(Notifier.id) == col(Delivery.notifier_id))
        if notifier_id is not None:
            query = query.where(Delivery.notifier_id == notifier_id)
        if alert_id is not None:
            query = query.where(Delivery.alert_id == alert_id)
        query = query.order_by(col(Delivery.id).desc()).limit(limit)
        with self.db.session() as session:
            rows = session.exec(query).all()
        return [_delivery_view(delivery, notifier) for delivery, notifier in rows]
