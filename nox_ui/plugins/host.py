"""The runtime side of plugins: loads the enabled ones, calls their hooks, and hands what they return to
the sampler, the notifier registry, the settings, the menu, the dashboard, the pages and the API.

Every hook call is isolated and bounded: a sync hook runs in a daemon thread of its own, an async one
on the loop, each for at most `HOOK_TIMEOUT` seconds. A plugin that raises while importing, in a hook,
or later in one of its pages or widgets (`report_failure`), or that returns something of the wrong
type, is marked failed: what it contributed is withdrawn, its traceback kept for admins, and the panel
and the other plugins go on. Enabling and disabling take effect live (`changed` tells the open pages);
a decision made elsewhere (the CLI) is picked up within `WATCH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from loguru import logger

from nox_ui.alerts import kinds as notifier_kinds
from nox_ui.alerts.kinds.base import NotifierKind
from nox_ui.errors import NotFound
from nox_ui.metrics.collectors import Collector
from nox_ui.metrics.series import NAME_RE as METRIC_NAME_RE
from nox_ui.plugins import builtin
from nox_ui.plugins.catalog import CatalogEntry, PluginCatalog
from nox_ui.plugins.context import PluginContext
from nox_ui.plugins.discovery import unsafe_reason
from nox_ui.plugins.settings import PluginSettings
from nox_ui.plugins.spec import ApiRoutes, NavItem, Page, PluginInfo, Widget
from nox_ui.roles import Principal
from nox_ui.search.documents import Document, plugin_documents
from nox_ui.signals import Signal
from nox_ui.supervisor import Supervisor

if TYPE_CHECKING:
    from nox_ui.cache import Cache
    from nox_ui.metrics.service import MetricsService
    from nox_ui.services.audit import AuditService

JOB = "plugins"  # the supervisor's name for the watch of stored decisions
HOOK_TIMEOUT = 5.0  # seconds a hook (or a plugin's import) may take before the plugin counts as failed
WATCH_SECONDS = 5.0  # how often the stored decisions are compared with what is loaded (CLI changes)


class PluginStatus(StrEnum):
    ENABLED = "enabled"  # loaded: its pages, menu entries, widgets, metrics and kinds are live
    DISABLED = "disabled"  # found, not enabled (new plugins start here)
    FAILED = "failed"  # enabled, but it raised, hung or returned garbage; see its error
    INCOMPATIBLE = "incompatible"  # its supported panel versions exclude this one
    REFUSED = "refused"  # may not be loaded (an unsafe plugins folder, an invalid name)


class PluginError(Exception):
    """A plugin broke a rule or a hook misbehaved; the message says where and how."""


@dataclass(frozen=True)
class Failure:
    where: str  # "import", "hook startup", "page /", "widget 'X'"...
    message: str  # one line
    traceback: str  # admins only
    at: float = field(default_factory=time.time)


@dataclass
class Contributions:
    pages: dict[str, Page] = field(default_factory=dict)
    nav: list[NavItem] = field(default_factory=list)
    widgets: list[Widget] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    settings: bool = False
    api: ApiRoutes | None = None
    search: list[Document] = field(default_factory=list)  # its search_documents, checked


@dataclass
class Loaded:
    ctx: PluginContext
    contributions: Contributions


@dataclass(frozen=True)
class PluginView:
    """A plugin as /admin/plugins, the API and the CLI show it."""

    name: str
    version: str
    description: str
    author: str
    homepage: str
    panel: str
    source: str
    status: PluginStatus
    enabled: bool
    reason: str  # why it is refused, incompatible or failed ('' otherwise)
    traceback: str  # of the failure (admins only)
    has_settings: bool
    pages: tuple[str, ...]
    metrics: tuple[str, ...]
    notifier_kinds: tuple[str, ...]


class PluginHost:
    def __init__(
        self,
        catalog: PluginCatalog,
        settings: PluginSettings,
        metrics: MetricsService,
        audit: AuditService,
        data_dir: Path,
        *,
        cache: Cache,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self.catalog = catalog
        self.cache = cache  # the plugins' `ctx.cache` namespaces
        self.settings = settings
        self.metrics = metrics
        self.audit = audit
        self.data_dir = data_dir
        self.hook_timeout = hook_timeout
        self.changed: Signal[str] = Signal("plugins.loaded")  # a plugin's name: it loaded, unloaded or failed
        self._pm: Any = None  # pluggy's PluginManager, made at the first load (see `pm`)
        self._builtin_nav: list[NavItem] = _list_of(builtin.nav_items(), NavItem, "nav_items")
        self._loaded: dict[str, Loaded] = {}
        self._failures: dict[str, Failure] = {}
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._withdrawing: set[asyncio.Task[None]] = set()
        # Set by the API when it is built: (name, its routes or None) at every load.
        self.api_mount: Callable[[str, ApiRoutes | None], None] | None = None

    @property
    def pm(self) -> Any:
        """pluggy's manager with the hooks and the built-in default plugin; imported when a plugin is
        first loaded, so a panel with none enabled does not carry it (~2 MiB)."""
        if self._pm is None:
            import pluggy

            from nox_ui.plugins import hookspecs

            manager = pluggy.PluginManager(hookspecs.PROJECT)
            manager.add_hookspecs(hookspecs)
            hookspecs.hookimpl(builtin.nav_items)
            manager.register(builtin, name=builtin.NAME)
            self._pm = manager
        return self._pm

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def supervisor(self) -> Supervisor:
        """The panel's one supervisor (the sampler's): the watch is its job "plugins"."""
        return self.metrics.supervisor

    async def start(self) -> None:
        """Load every enabled plugin, then watch the stored decisions (the supervised job "plugins")."""
        await self._load_enabled()
        self.supervisor.task(JOB, self._watch_decisions)

    async def run(self) -> None:
        """Both as one supervised job (how the panel starts them): a failure while loading is retried too."""
        await self._load_enabled()
        await self._watch_decisions()

    async def _load_enabled(self) -> None:
        self._loop = asyncio.get_running_loop()
        # The stored decisions first: with none enabled, nothing is looked for (or imported) at all.
        decisions = await asyncio.to_thread(self.catalog.decisions)
        for name, enabled in decisions.items():
            if enabled:
                await self.reconcile(name)

    async def stop(self) -> None:
        # A load the watch was doing cleans up after itself when cancelled.
        await self.supervisor.stop(JOB)
        async with self._lock:
            for name in list(self._loaded):
                await self._unload(name)

    async def _watch_decisions(self) -> None:
        looked_for: set[str] = set()  # enabled by name but not found: the folder is searched once for each
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                entries = await asyncio.to_thread(self._watched_entries, looked_for)
            except Exception as exc:  # the watch must survive a database hiccup
                self.supervisor.report(JOB, exc)
                continue
            self.supervisor.report(JOB, None)
            for entry in entries:  # a plugin decided on and then uninstalled is not found: nothing to do
                name = entry.name
                wanted = entry.enabled and not entry.refused
                loaded, failure = name in self._loaded, self._failures.get(name)
                # a failed plugin waits for an admin to enable it again (here or with the CLI)
                retry = failure is not None and entry.decided_at is not None and entry.decided_at > failure.at
                failed = failure is not None and not retry
                if (wanted and not loaded and not failed) or (not wanted and (loaded or failure is not None)):
                    try:
                        await self.reconcile(name, retry=retry)
                    except Exception as exc:
                        logger.warning("applying the stored state of plugin {} failed", name)
                        self.supervisor.report(JOB, exc)

    def _watched_entries(self, looked_for: set[str]) -> list[CatalogEntry]:
        """The catalog's entries; looked for again when a stored decision names a plugin not yet found
        (dropped into the folder, then enabled by the CLI, which searched the folder in its own process)."""
        records = self.catalog.records()
        if not any(r.enabled for r in records.values()) and not self._loaded and not self._failures:
            return []  # nothing enabled, nothing to undo: no discovery (a panel without plugins stays lean)
        entries = self.catalog.entries(records=records)
        known = {entry.name for entry in entries}
        unknown = {name for name, r in records.items() if r.enabled and name not in known}
        if unknown - looked_for:
            looked_for |= unknown
            entries = self.catalog.entries(refresh=True, records=records)
        return entries

    async def enable(self, actor: Principal, name: str, *, ip: str = "") -> PluginView:
        """An admin's enable (audited): stored, then loaded now. Enabling a failed plugin tries again."""
        await asyncio.to_thread(self.catalog.enable, actor, name, ip=ip)
        await self.reconcile(name, retry=True)
        return await asyncio.to_thread(self.view, name)

    async def disable(self, actor: Principal, name: str, *, ip: str = "") -> PluginView:
        await asyncio.to_thread(self.catalog.disable, actor, name, ip=ip)
        await self.reconcile(name)
        return await asyncio.to_thread(self.view, name)

    async def reconcile(self, name: str, *, retry: bool = False) -> None:
        """Make what is loaded match the stored decision for `name`; `retry`: a failed plugin is tried again."""
        async with self._lock:
            if retry:
                self._failures.pop(name, None)
            try:
                entry: CatalogEntry | None = await asyncio.to_thread(self.catalog.entry, name)
            except NotFound:  # uninstalled or removed from the folder since it was decided on
                entry = None
            wanted = entry is not None and entry.enabled and not entry.refused
            if entry is not None and wanted and name not in self._loaded and name not in self._failures:
                await self._load(entry)
            elif not wanted and (name in self._loaded or name in self._failures):
                self._failures.pop(name, None)
                await self._unload(name)
                self.changed.emit(name)

    # -- loading -----------------------------------------------------------------------------------

    async def _load(self, entry: CatalogEntry) -> None:
        name, info = entry.name, entry.info
        where = "import"
        ctx: PluginContext | None = None
        started = False
        try:
            module = await self._bounded("importing the plugin", _import, info)
            _check_hook_names(module)
            self.pm.register(module, name=name)
            ctx = PluginContext(
                info,
                data_root=self.data_dir / "plugin-data",
                cache=self.cache,
                audit=self.audit,
                metrics=self.metrics,
                settings=self.settings,
            )
            done = Contributions()
            where = "hook settings_schema"
            model = await self._hook(name, "settings_schema", ctx)
            if model is not None:
                await asyncio.to_thread(self.settings.register, name, model)  # reads stored values
                done.settings = True
            where = "hook startup"
            await self._hook(name, "startup", ctx)
            started = True
            where = "hook metric_collectors"
            done.collectors = self._check_collectors(
                _list_of(await self._hook(name, "metric_collectors", ctx), Collector, "metric_collectors"),
            )
            where = "hook notifier_kinds"
            kinds = self._check_kinds(
                _list_of(await self._hook(name, "notifier_kinds", ctx), NotifierKind, "notifier_kinds")
            )
            where = "hook register_pages"
            pages: list[Page] = _list_of(
                await self._hook(name, "register_pages", ctx), Page, "register_pages"
            )
            for page in pages:
                path = _page_key(page.path)
                if path in done.pages:
                    raise PluginError(f"register_pages: two pages at {page.path!r}")
                done.pages[path] = page
            where = "hook nav_items"
            done.nav = _list_of(await self._hook(name, "nav_items", ctx), NavItem, "nav_items")
            where = "hook dashboard_widgets"
            done.widgets = _list_of(
                await self._hook(name, "dashboard_widgets", ctx), Widget, "dashboard_widgets"
            )
            where = "hook api_routes"
            done.api = _api_routes(await self._hook(name, "api_routes", ctx))
            where = "hook search_documents"
            try:
                done.search = plugin_documents(name, await self._hook(name, "search_documents", ctx))
            except ValueError as exc:
                raise PluginError(str(exc)) from None
        except Exception as exc:
            self._record_failure(name, where, exc)
            if started and ctx is not None:
                await self._shutdown_hook(name, ctx)
            self._forget(name, ctx)
            self.changed.emit(name)
            return
        except BaseException:  # cancelled half-way (the panel stopping): nothing of it stays registered
            self._forget(name, ctx)
            raise
        # Everything checked: now it goes live, all at once (and is taken back whole if that fails).
        self._loaded[name] = Loaded(ctx=ctx, contributions=done)
        try:
            for collector in done.collectors:
                self.metrics.add_collector(collector)
            for kind in kinds:
                notifier_kinds.register(kind)
                done.kinds.append(kind.name)
            if self.api_mount is not None:
                self.api_mount(name, done.api)
        except Exception as exc:
            self._record_failure(name, "going live", exc)
            await self._unload(name)
            self.changed.emit(name)
            return
        logger.info("plugin {} {} enabled", name, info.version)
        self.changed.emit(name)

    async def _unload(self, name: str) -> None:
        loaded = self._loaded.pop(name, None)
        if loaded is None:
            return
        done = loaded.contributions
        for collector in done.collectors:
            self.metrics.remove_collector(collector.name)
        for kind in done.kinds:
            notifier_kinds.unregister(kind)
        if done.api is not None and self.api_mount is not None:
            self.api_mount(name, None)  # its routes leave the API: 404, as for a plugin never installed
        await self._shutdown_hook(name, loaded.ctx)
        self._forget(name, loaded.ctx)
        logger.info("plugin {} disabled", name)

    async def _shutdown_hook(self, name: str, ctx: PluginContext) -> None:
        try:
            await self._hook(name, "shutdown", ctx)
        except Exception as exc:  # it is going away anyway; say why it did not stop cleanly
            logger.opt(exception=exc).warning("plugin {}: shutdown failed", name)

    def _forget(self, name: str, ctx: PluginContext | None) -> None:
        self.settings.unregister(name)
        if ctx is not None:
            ctx.close()
        if self._pm is not None and self._pm.has_plugin(name):
            self._pm.unregister(name=name)

    def _record_failure(self, name: str, where: str, exc: BaseException) -> None:
        message = f"{where}: {type(exc).__name__}: {exc}".splitlines()[0][:500]
        text = "".join(traceback.format_exception(exc))
        self._failures[name] = Failure(where=where, message=message, traceback=text)
        logger.error(
            "plugin {} failed ({}); it is switched off until an admin enables it again:\n{}",
            name,
            where,
            text,
        )

    def report_failure(self, name: str, where: str, exc: BaseException) -> None:
        """A plugin's page or widget raised (on the event loop): mark it failed and withdraw it."""
        failed = self._loaded.get(name)
        if failed is None:
            return
        self._record_failure(name, where, exc)

        async def withdraw() -> None:
            async with self._lock:
                if self._loaded.get(name) is not failed:  # disabled (and perhaps enabled again) meanwhile
                    return
                await self._unload(name)
            self.changed.emit(name)

        loop: asyncio.AbstractEventLoop | None
        try:
            loop = asyncio.get_running_loop()  # pages, widgets and routes report from the event loop
        except RuntimeError:
            loop = self._loop
        if loop is not None and loop.is_running():
            task = loop.create_task(withdraw(), name=f"withdraw plugin {name}")
            self._withdrawing.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._withdrawing.discard)

    # -- calling hooks, isolated and bounded --------------------------------------------------------

    async def _hook(self, name: str, hook: str, ctx: PluginContext) -> Any:
        impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == name]
        if not impls:
            return None
        impl = impls[0]
        kwargs = {arg: ctx for arg in impl.argnames}
        return await self._bounded(f"hook {hook}", impl.function, **kwargs)

    async def _bounded(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`func(*args, **kwargs)` for at most `hook_timeout` seconds, raising `PluginError` for a hang and
        for anything that is not an `Exception` (`SystemExit` must not stop the panel)."""
        deadline = time.monotonic() + self.hook_timeout
        if inspect.iscoroutinefunction(func):
            result = func(*args, **kwargs)
        else:
            future: Future[Any] = Future()

            def run() -> None:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(func(*args, **kwargs))
                except Exception as exc:  # handed to the awaiting caller, which marks the plugin failed
                    future.set_exception(exc)
                except BaseException as exc:  # SystemExit, KeyboardInterrupt: the plugin's, not the panel's
                    future.set_exception(PluginError(f"{what} raised {type(exc).__name__}: {exc}"))

            # A thread of its own: a hook that never returns holds only this daemon thread.
            threading.Thread(target=run, name=f"plugin {what}", daemon=True).start()
            done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=self.hook_timeout)
            if not done:
                raise PluginError(f"{what} did not return within {self.hook_timeout:g} s")
            result = done.pop().result()
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_contained(what, result))
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                # Cancelled, not awaited: a coroutine that swallows its cancellation is left to itself.
                task.cancel()
                task.add_done_callback(_retrieve)
                raise PluginError(f"{what} did not finish within {self.hook_timeout:g} s")
            result = task.result()
        return result

    # -- checking what hooks returned ---------------------------------------------------------------

    def _check_collectors(self, collectors: list[Collector]) -> list[Collector]:
        taken = {c.name for c in self.metrics.sampler.collectors}
        owners = {spec.name: spec.collector for spec in self.metrics.specs.values()}
        for collector in collectors:
            if not collector.name or collector.name in taken:
                raise PluginError(f"metric_collectors: collector name {collector.name!r} is empty or taken")
            for spec in collector.specs:
                if not METRIC_NAME_RE.match(spec.name):
                    raise PluginError(f"metric_collectors: {spec.name!r} is not a dotted metric name")
                owner = owners.get(spec.name)
                if owner is not None and owner != collector.name:
                    raise PluginError(
                        f"metric_collectors: metric {spec.name!r} belongs to collector {owner!r}"
                    )
                if spec.collector != collector.name:
                    raise PluginError(
                        f"metric_collectors: spec {spec.name!r} names collector {spec.collector!r}, "
                        f"not {collector.name!r}"
                    )
            taken.add(collector.name)
        return collectors

    def _check_kinds(self, kinds: list[NotifierKind]) -> list[NotifierKind]:
        seen: set[str] = set()
        for kind in kinds:
            try:
                name = notifier_kinds.check_kind_name(getattr(kind, "name", None))
            except ValueError as exc:
                raise PluginError(f"notifier_kinds: {exc}") from None
            if notifier_kinds.find(name) is not None or name in seen:
                raise PluginError(f"notifier_kinds: a notifier kind named {name!r} exists already")
            seen.add(name)
        return kinds

    # -- what the panel shows -----------------------------------------------------------------------

    def _active(self) -> dict[str, Loaded]:
        """The loaded plugins minus one that just failed and is being withdrawn: it offers nothing more."""
        return {n: p for n, p in self._loaded.items() if n not in self._failures}

    def is_active(self, name: str) -> bool:
        return name in self._loaded and name not in self._failures

    def nav_items(self, principal: Principal) -> list[NavItem]:
        items = [*self._builtin_nav, *(i for p in self._active().values() for i in p.contributions.nav)]
        return sorted((i for i in items if principal.role.allows(i.role)), key=lambda i: i.order)  # type: ignore[arg-type]

    def widgets(self, principal: Principal) -> list[tuple[str, Widget]]:
        found = [(name, w) for name, p in self._active().items() for w in p.contributions.widgets]
        return sorted(
            ((n, w) for n, w in found if principal.role.allows(w.role)),  # type: ignore[arg-type]
            key=lambda item: item[1].order,
        )

    def page(self, name: str, path: str) -> Page | None:
        loaded = self._active().get(name)
        return loaded.contributions.pages.get(_page_key(path)) if loaded is not None else None

    def api_routes(self) -> dict[str, ApiRoutes]:
        return {n: p.contributions.api for n, p in self._active().items() if p.contributions.api is not None}

    def search_documents(self) -> list[Document]:
        """What the active plugins' `search_documents` hooks returned (the search index's "plugin" group)."""
        return [doc for p in self._active().values() for doc in p.contributions.search]

    def context(self, name: str) -> PluginContext | None:
        loaded = self._loaded.get(name)
        return loaded.ctx if loaded is not None else None

    def views(self, *, refresh: bool = False) -> list[PluginView]:
        """Every plugin found, with its status (reads the database: call it off the event loop)."""
        return [self._view(entry) for entry in self.catalog.entries(refresh=refresh)]

    def view(self, name: str) -> PluginView:
        return self._view(self.catalog.entry(name))

    def _view(self, entry: CatalogEntry) -> PluginView:
        info, loaded, failure = entry.info, self._loaded.get(entry.name), self._failures.get(entry.name)
        if entry.refused:
            status = PluginStatus.INCOMPATIBLE if entry.incompatible else PluginStatus.REFUSED
        elif failure is not None:
            status = PluginStatus.FAILED
        elif loaded is not None:
            status = PluginStatus.ENABLED
        else:
            status = PluginStatus.DISABLED
        done = loaded.contributions if loaded is not None else Contributions()
        return PluginView(
            name=info.name,
            version=info.version,
            description=info.description,
            author=info.author,
            homepage=info.homepage,
            panel=info.panel,
            source=info.source,
            status=status,
            enabled=entry.enabled,
            reason=entry.refused or (failure.message if failure is not None else ""),
            traceback=failure.traceback if failure is not None else "",
            has_settings=done.settings,
            pages=tuple(f"/plugins/{info.name}{path}" for path in done.pages),
            metrics=tuple(spec.name for c in done.collectors for spec in c.specs),
            notifier_kinds=tuple(done.kinds),
        )


# -- helpers -----------------------------------------------------------------------------------------


def _import(info: PluginInfo) -> ModuleType:
    """Import the plugin's module: `module[:attr]` of an entry point, or a file or package of the folder."""
    target = info.module
    path = Path(target)
    if path.is_absolute():
        # Checked again now: discovery's answer is cached, and the file may have changed since.
        problem = unsafe_reason(path.parent, recursive=False) or unsafe_reason(path)
        if problem:
            raise PluginError(f"refusing to import it: {problem}")
        module_name = f"nox_ui_plugin_{info.name.replace('-', '_')}"
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(
                module_name, path / "__init__.py", submodule_search_locations=[str(path)]
            )
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import {path}")
        _private_pycache(path)
        # Executed afresh at each enable, its submodules too (a fixed file takes effect without a restart).
        for loaded_name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
            del sys.modules[loaded_name]
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    module_path, _, attr = target.partition(":")
    module = importlib.import_module(module_path.strip())
    if attr:
        found = getattr(module, attr.strip())
        if not isinstance(found, ModuleType):
            raise PluginError(f"entry point {target!r} must name a module")
        return found
    return module


def _private_pycache(path: Path) -> None:
    """Create, owner-only, the `__pycache__` folders the import writes the plugin's bytecode to: made by
    the import under a umask such as 002 they would be group-writable, and discovery would refuse the
    whole plugins folder from then on (rightly: who can write bytecode there can run code as the panel)."""
    if sys.dont_write_bytecode:
        return
    for source in path.rglob("*.py") if path.is_dir() else [path]:
        cache = Path(importlib.util.cache_from_source(str(source))).parent
        if cache.parent == source.parent and not cache.exists():  # not under sys.pycache_prefix
            try:
                cache.mkdir(mode=0o700)
            except OSError as exc:  # read-only: nothing gets cached, nothing is unsafe
                logger.debug("no bytecode folder {} for the plugin: {}", cache, exc)


async def _contained(what: str, awaitable: Any) -> Any:
    """Await a hook's coroutine; its `SystemExit` or `KeyboardInterrupt` becomes a `PluginError` here,
    inside the task, where asyncio would otherwise re-raise it out of the event loop."""
    try:
        return await awaitable
    except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
        raise PluginError(f"{what} raised {type(exc).__name__}: {exc}") from None


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Collect a timed-out hook's late outcome so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _check_hook_names(module: ModuleType) -> None:
    """A hookimpl whose name is not a hook is a typo the plugin's author wants to hear about."""
    from nox_ui.plugins import hookspecs

    for attr in dir(module):
        value = getattr(module, attr, None)
        if callable(value) and hasattr(value, f"{hookspecs.PROJECT}_impl") and not hasattr(hookspecs, attr):
            known = ", ".join(
                sorted(
                    n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec")
                )
            )
            raise PluginError(f"{attr!r} is marked @hookimpl but is not a hook (the hooks: {known})")


def _list_of(value: Any, kind: type[Any], hook: str) -> list[Any]:
    """A hook's answer as a list of `kind` (None is none, one item is a list of one); anything else is
    garbage, named in the error."""
    if value is None:
        return []
    if isinstance(value, kind):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(item, kind) for item in value):
        return list(value)
    got = type(value).__name__
    if isinstance(value, list | tuple):
        got = f"a list holding {', '.join(sorted({type(i).__name__ for i in value if not isinstance(i, kind)}))}"
    raise PluginError(f"{hook} returned {got}; expected a list of {kind.__name__}")


def _api_routes(value: Any) -> ApiRoutes | None:
    if value is None or isinstance(value, ApiRoutes):
        return value
    from fastapi import APIRouter

    if isinstance(value, APIRouter):
        return ApiRoutes(value)
    raise PluginError(f"api_routes returned {type(value).__name__}; expected an APIRouter or ApiRoutes")


def _page_key(path: str) -> str:
    """'/', '/status' and '/status/' name pages alike."""
    return "/" + path.strip("/")
