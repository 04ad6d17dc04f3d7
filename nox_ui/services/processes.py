"""The host's processes: list (filtered, sorted, paged), details, and TERM/KILL. UI-free, psutil-based.

The one place for the rules the API and the page share: who sees full command lines (operators and
admins; viewers only when `process_cmdline_for_viewers` is on, since command lines often hold
passwords), and which ids may never be signalled (init, the panel itself, its threads, its parent and
its process group, and any id that is a thread rather than a process).

Nothing here runs in the background: a listing is taken only when someone looks (the processes page
or the API). Every caller within `SNAPSHOT_SECONDS` shares one reading of all processes (the cache's
memory namespace "processes": raw, with full command lines, never on disk); each caller then filters,
sorts and pages it by its own rights. CPU % needs two readings of a process's CPU times, so the
`psutil.Process` objects are kept between readings (a private cache, not psutil's shared
`process_iter` one, so another caller reading CPU % cannot shorten our interval); the first reading
of a process shows 0.0.
"""

from __future__ import annotations

import builtins
import os
import signal as signals
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psutil
from loguru import logger

from nox_ui.cache import Cache
from nox_ui.errors import Forbidden, Invalid, NotFound
from nox_ui.roles import Principal, Role, authorize
from nox_ui.runtime_settings import RuntimeSettings
from nox_ui.services.audit import AuditService

SIGNALS: dict[str, signals.Signals] = {"TERM": signals.SIGTERM, "KILL": signals.SIGKILL}
MAX_LIMIT = 1000
# Listings closer together than this reuse the previous CPU readings: over a few milliseconds the
# kernel's tick granularity makes CPU % noise (two tabs, or a script and a tab, may list at once).
MIN_CPU_INTERVAL = 0.5
# Listings closer together than this (any number of pages and API callers) share one reading of
# /proc; the page refreshes every 2 s, so each of its refreshes still sees a new reading.
SNAPSHOT_SECONDS = 1.0
SNAPSHOT = ("processes", "snapshot")  # cache namespace and key

# What one listing reads per process (one `oneshot()` each, through `as_dict`).
_ATTRS = [
    "name",
    "username",
    "cpu_percent",
    "memory_percent",
    "memory_info",
    "status",
    "num_threads",
    "create_time",
    "cmdline",
]
_ATTRS_NO_CPU = [attr for attr in _ATTRS if attr != "cpu_percent"]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    username: str  # "" when the OS does not tell us
    cpu_percent: float | None  # since the previous listing; 0.0 the first time; None when denied
    memory_percent: float | None
    rss_bytes: int | None
    status: str
    num_threads: int | None
    create_time: float | None  # unix time
    cmdline: str  # arguments joined by spaces; "" for kernel threads, zombies or when denied
    cmdline_hidden: bool = False  # True when `cmdline` holds only the executable name (a viewer's view)


@dataclass(frozen=True)
class ProcessPage:
    total: int  # matches of the filter, before limit/offset
    items: list[ProcessInfo]


@dataclass(frozen=True)
class ProcessDetails:
    info: ProcessInfo
    ppid: int | None
    children: int | None
    open_files: int | None
    connections: int | None  # internet sockets (tcp/udp, v4/v6)
    cwd: str | None
    exe: str | None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _none_last(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


SORT_KEYS: dict[str, Callable[[ProcessInfo], Any]] = {
    "pid": lambda p: p.pid,
    "name": lambda p: (p.name.casefold(), p.pid),
    "user": lambda p: (p.username.casefold(), p.pid),
    "cpu": lambda p: (_none_last(p.cpu_percent), p.pid),
    "memory": lambda p: (_none_last(p.memory_percent), p.pid),
    "rss": lambda p: (_none_last(p.rss_bytes), p.pid),
    "threads": lambda p: (_none_last(p.num_threads), p.pid),
    "start": lambda p: (_none_last(p.create_time), p.pid),
}


class Refused(Invalid):
    """A signal the safety rules refuse (not a bad request): audited as "denied", answered with 422."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class ProcessService:
    def __init__(
        self,
        audit: AuditService | None = None,
        settings: Callable[[], RuntimeSettings] | None = None,
        cache: Cache | None = None,
    ) -> None:
        self.audit = audit
        self._settings = settings
        self._cache = cache if cache is not None else Cache(None)  # None: a private, memory-only one
        self._lock = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        self._last_cpu: dict[int, float | None] = {}
        self._measured_at = float("-inf")  # time.monotonic() of the last CPU reading
        self._own_user: str | None = None

    # -- reading --------------------------------------------------------------------------------

    def shows_cmdline(self, requester: Principal) -> bool:
        """Whether `requester` may read full command lines (viewers only when an admin allowed it)."""
        if requester.role.allows(Role.OPERATOR):
            return True
        return self._settings is not None and self._settings().process_cmdline_for_viewers

    def list(
        self,
        requester: Principal,
        sort: str = "cpu",
        q: str = "",
        limit: int = 50,
        offset: int = 0,
        descending: bool = True,
    ) -> ProcessPage:
        """`q` matches pid, name, user and the command line as `requester` may see it: a viewer's
        search never matches hidden arguments, or its hit count would reveal them."""
        authorize(requester, Role.VIEWER)
        key = SORT_KEYS.get(sort)
        if key is None:
            raise Invalid(f"unknown sort key {sort!r} (choose one of: {', '.join(SORT_KEYS)})")
        if not 1 <= limit <= MAX_LIMIT:
            raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise Invalid("offset must be 0 or more")
        needle = q.strip().casefold()
        infos = self._snapshot()
        if not self.shows_cmdline(requester):
            infos = [_without_arguments(info) for info in infos]
        matches = [info for info in infos if _matches(info, needle)]
        matches.sort(key=key, reverse=descending)
        return ProcessPage(total=len(matches), items=matches[offset : offset + limit])

    def details(self, requester: Principal, pid: int) -> ProcessDetails:
        authorize(requester, Role.VIEWER)
        try:
            proc = psutil.Process(pid)
        except (psutil.NoSuchProcess, ValueError):  # ValueError: pid < 0
            raise NotFound(f"process {pid} no longer exists") from None
        try:
            with proc.oneshot():
                data = proc.as_dict(_ATTRS, ad_value=None)
                info = _info(pid, data)
                with self._lock:
                    cached = self._procs.get(pid)
                    if cached is not None and cached.create_time() == proc.create_time():
                        # The reading of the last listing: measuring again here would be over
                        # a few milliseconds and would shorten the next listing's interval.
                        info = replace(info, cpu_percent=self._last_cpu.get(pid))
                ppid = _permitted(proc.ppid)
                children = _permitted(lambda: len(proc.children()))
                open_files = _permitted(lambda: len(proc.open_files()))
                connections = _permitted(lambda: len(proc.net_connections(kind="inet")))
                cwd = _permitted(proc.cwd)
                exe = _permitted(proc.exe) or None
        except psutil.NoSuchProcess:
            raise NotFound(f"process {pid} no longer exists") from None
        if not self.shows_cmdline(requester):
            info = _without_arguments(info)
        return ProcessDetails(
            info=info,
            ppid=ppid,
            children=children,
            open_files=open_files,
            connections=connections,
            cwd=cwd,
            exe=exe,
        )

    def _snapshot(self) -> builtins.list[ProcessInfo]:
        """Every process as read by the last caller within `SNAPSHOT_SECONDS`, or read now. Shared:
        callers copy what they change (`_without_arguments` returns a new record)."""
        namespace, key = SNAPSHOT
        return self._cache.get_or_compute(namespace, key, self._read_all, ttl=SNAPSHOT_SECONDS)

    def _read_all(self) -> builtins.list[ProcessInfo]:
        """Read every process once; CPU % is measured since the previous reading."""
        with self._lock:
            now = time.monotonic()
            measure = now - self._measured_at >= MIN_CPU_INTERVAL
            seen: dict[int, psutil.Process] = {}
            infos: builtins.list[ProcessInfo] = []
            for pid in psutil.pids():
                proc = self._procs.get(pid)
                try:
                    new = proc is None or not proc.is_running()  # new, or the pid was reused
                    if new:
                        proc = psutil.Process(pid)
                    assert proc is not None
                    if measure or new:
                        data = proc.as_dict(_ATTRS, ad_value=None)
                    else:
                        data = proc.as_dict(_ATTRS_NO_CPU, ad_value=None)
                        data["cpu_percent"] = self._last_cpu.get(pid)
                except psutil.NoSuchProcess:  # vanished while we looked
                    continue
                except psutil.AccessDenied:  # not even its basics: list the pid, blank the rest
                    infos.append(_info(pid, {}))
                    continue
                seen[pid] = proc
                infos.append(_info(pid, data))
            self._procs = seen  # vanished pids drop out here
            self._last_cpu = {info.pid: info.cpu_percent for info in infos}
            if measure:
                self._measured_at = now
            return infos

    # -- acting ---------------------------------------------------------------------------------

    def signal(
        self,
        actor: Principal,
        pid: int,
        name: str,
        *,
        create_time: float | None = None,
        ip: str = "",
    ) -> ProcessInfo:
        """Send TERM or KILL to a process (operator+). Returns the process as it was just before.

        `create_time`, when given, must match the process's start time: a page that was opened a
        while ago then cannot signal a different process that has since reused the pid. `ip` is the
        caller's address, for the audit event."""
        signal_name = name.strip().upper()
        process_name = ""
        try:
            authorize(actor, Role.OPERATOR)
            if signal_name not in SIGNALS:
                raise Invalid(f"unknown signal {name!r} (choose one of: {', '.join(SIGNALS)})")
            if pid <= 0:
                # kill(2) reads 0 and -1 as "the caller's group" and "every process": never an id here
                raise Refused(f"refusing to signal pid {pid}: not a single process", "not-a-process")
            try:
                # Taken before the checks: send_signal compares this start time again, so an id
                # reused after the checks is not signalled.
                proc = psutil.Process(pid)
                process_name = _permitted(proc.name) or ""
                _refuse_protected(pid)
                with proc.oneshot():
                    if create_time is not None and abs(proc.create_time() - create_time) > 0.01:
                        raise psutil.NoSuchProcess(pid)  # the pid now belongs to another process
                    info = _info(pid, proc.as_dict(_ATTRS, ad_value=None))
                proc.send_signal(SIGNALS[signal_name])
            except psutil.AccessDenied:
                raise Forbidden(
                    f"not permitted to signal process {pid} ({process_name or '?'}); "
                    f"the panel runs as {self._panel_user()}"
                ) from None
            except (psutil.NoSuchProcess, ProcessLookupError):
                raise NotFound(f"process {pid} no longer exists") from None
        except Forbidden as exc:
            self._record_signal(actor, pid, process_name, signal_name or name, "denied", exc.message, ip=ip)
            raise
        except Refused as exc:
            self._record_signal(
                actor, pid, process_name, signal_name, "denied", exc.message, rule=exc.rule, ip=ip
            )
            raise
        except (Invalid, NotFound) as exc:
            self._record_signal(actor, pid, process_name, signal_name or name, "failure", exc.message, ip=ip)
            raise
        self._record_signal(actor, pid, process_name, signal_name, "success", None, ip=ip)
        self._cache.invalidate(*SNAPSHOT)  # the next listing shows what the signal did
        return info

    def _record_signal(
        self,
        actor: Principal,
        pid: int,
        process_name: str,
        signal: str,
        outcome: str,
        error: str | None,
        *,
        rule: str | None = None,
        ip: str = "",
    ) -> None:
        """The one place every signal attempt passes: outcome is "success", "failure" or "denied"
        (the role, the OS, or a safety `rule` refused it)."""
        log = logger.info if outcome == "success" else logger.warning
        log(
            "process signal {} to pid {} ({}) by {} ({}) from {}: {}{}",
            signal,
            pid,
            process_name or "?",
            actor.username,
            actor.role.value,
            ip or "?",
            outcome,
            f": {error}" if error else "",
        )
        if self.audit is not None:
            details: dict[str, Any] = {"signal": signal}
            if error:
                details["error"] = error
            if rule:
                details["rule"] = rule
            self.audit.record_now(
                actor=actor,
                action="process.signal",
                outcome=outcome,
                target_type="process",
                target_id=pid,
                target_label=process_name,
                details=details,
                ip=ip,
            )

    def _panel_user(self) -> str:
        if self._own_user is None:
            try:
                self._own_user = psutil.Process().username()
            except (psutil.Error, KeyError):
                self._own_user = f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "an unknown user"
        return self._own_user


def _info(pid: int, data: dict[str, Any]) -> ProcessInfo:
    memory = data.get("memory_info")
    cmdline = data.get("cmdline")
    memory_percent = data.get("memory_percent")
    cpu = data.get("cpu_percent")
    return ProcessInfo(
        pid=pid,
        name=_text(data.get("name")),
        username=_text(data.get("username")),
        cpu_percent=round(cpu, 1) if isinstance(cpu, float | int) else None,
        memory_percent=round(memory_percent, 2) if isinstance(memory_percent, float | int) else None,
        rss_bytes=memory.rss if memory is not None else None,
        status=_text(data.get("status")),
        num_threads=data.get("num_threads"),
        create_time=data.get("create_time"),
        cmdline=" ".join(cmdline) if isinstance(cmdline, list) else "",
    )


def _refuse_protected(pid: int) -> None:
    """Raise Refused for an id whose signal could stop the host or the panel, or that is no process."""
    panel = os.getpid()
    if pid == 1:
        raise Refused("refusing to signal pid 1: it is the system's init process", "init")
    if pid == panel:
        raise Refused(f"refusing to signal pid {pid}: it is this panel's own process", "panel")
    owner = _thread_group(pid)
    # A signal to any thread id reaches its whole process: to one of ours, it would stop the panel.
    if owner == panel or pid in _panel_threads():
        raise Refused(f"refusing to signal {pid}: it is a thread of this panel's own process", "panel-thread")
    if owner is not None and owner != pid:
        raise Refused(
            f"refusing to signal {pid}: it is a thread of process {owner}, not a process "
            f"(signal process {owner} itself if that is what you mean)",
            "thread",
        )
    if pid not in psutil.pids():  # where /proc gives no Tgid: only listed ids are processes
        raise NotFound(f"process {pid} no longer exists")
    if pid == os.getppid():
        raise Refused(f"refusing to signal pid {pid}: it is this panel's parent process", "panel-parent")
    if hasattr(os, "getpgid"):
        try:
            group: int | None = os.getpgid(pid)
        except PermissionError:  # in another session, so not in our group
            group = None
        if group == os.getpgrp():
            raise Refused(
                f"refusing to signal pid {pid}: it is in this panel's own process group ({group}), "
                "so stopping it may stop the panel",
                "panel-group",
            )


def _thread_group(task_id: int) -> int | None:
    """The process (Tgid) a Linux task id belongs to; None when /proc does not know the id."""
    try:
        with open(f"/proc/{task_id}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _panel_threads() -> set[int]:
    try:
        return {thread.id for thread in psutil.Process().threads()}
    except psutil.Error:
        return set()


def _without_arguments(info: ProcessInfo) -> ProcessInfo:
    """A viewer's view: the executable name in place of the command line, which may hold secrets."""
    if not info.cmdline:
        return info
    return replace(info, cmdline=info.name, cmdline_hidden=True)


def _matches(info: ProcessInfo, needle: str) -> bool:
    if not needle:
        return True
    if needle.isdecimal() and int(needle) == info.pid:
        return True
    return (
        needle in info.name.casefold()
        or needle in info.username.casefold()
        or needle in info.cmdline.casefold()
    )


def _permitted(read: Callable[[], Any]) -> Any:
    """A detail the OS may withhold: None when access is denied (or the process is a zombie)."""
    try:
        return read()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None
