"""A plugin that breaks cannot take the panel down: through the real host, a plugin that raises while
importing or in a hook, hangs, returns garbage, misnames a hook, targets another panel version or sits
in an unsafe folder is failed, incompatible or refused with a readable reason, and the panel (its
menu, its sampler, the other plugins) goes on. A good plugin is enabled and disabled live, new ones
start disabled without running any code, and a decision made by the CLI reaches the running host."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from nox_ui import __version__
from nox_ui.alerts import kinds
from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.errors import Conflict, NotFound
from nox_ui.models import PluginRecord
from nox_ui.plugins import host as host_module
from nox_ui.plugins.catalog import PluginCatalog
from nox_ui.plugins.host import PluginHost, PluginStatus, PluginView
from nox_ui.roles import CLI, PANEL
from nox_ui.services.settings import InvalidSettings

WAIT = 30.0  # the most any test waits for a condition; a working host needs a fraction of it


# -- writing plugins into DATA_DIR/plugins ----------------------------------------------------------


def plugin_dir(settings: Settings) -> Path:
    return settings.data_dir / "plugins"


def write_plugin(settings: Settings, name: str, source: str, *, as_file: bool = False) -> Path:
    """A folder plugin `<name>/__init__.py` (or a single `<name>.py`), safe: only its owner may write."""
    folder = plugin_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    stem = name.replace("-", "_")
    if as_file:
        path = folder / f"{stem}.py"
    else:
        package = folder / stem
        package.mkdir(mode=0o700, exist_ok=True)
        package.chmod(0o700)
        path = package / "__init__.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    path.chmod(0o600)
    return path


def header(name: str, panel: str = ">=0.1") -> str:
    return f'PLUGIN = {{"name": "{name}", "version": "1.0", "panel": "{panel}"}}\n'


def good_plugin(name: str, label: str) -> str:
    """A plugin that only adds a menu entry."""
    return header(name) + textwrap.dedent(
        f"""
        from nox_ui.plugin import NavItem, hookimpl

        @hookimpl
        def nav_items(ctx):
            return [NavItem("{label}", "/plugins/{name}/")]
        """
    )


def nav_labels(services: Services) -> list[str]:
    return [item.label for item in services.plugins.nav_items(PANEL)]


def collector_names(services: Services) -> list[str]:
    return [c.name for c in services.metrics.sampler.collectors]


def assert_panel_serves(services: Services) -> None:
    """The built-in menu and the built-in collectors are untouched."""
    assert "Dashboard" in nav_labels(services)
    assert "cpu.percent" in services.metrics.sampler.sample().values


async def folder_views(services: Services, settings: Settings) -> list[PluginView]:
    """The plugins found in DATA_DIR/plugins, looked for again (entry-point plugins installed in the
    environment are listed too, and left out here)."""
    found = await asyncio.to_thread(services.plugins.views, refresh=True)
    return [v for v in found if v.source.startswith(str(plugin_dir(settings)))]


async def view(services: Services, name: str) -> PluginView:
    return await asyncio.to_thread(services.plugins.view, name)


async def wait_for_status(services: Services, name: str, status: PluginStatus) -> PluginView:
    async def reached() -> PluginView:
        while True:
            found = await view(services, name)
            if found.status == status:
                return found
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(reached(), WAIT)


async def wait_until(condition: Callable[[], bool]) -> None:
    async def reached() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(reached(), WAIT)


def release_hung(folder: Path) -> None:
    """Let the threads of hung fixture plugins return (their module's `RELEASE` event)."""
    for module in list(sys.modules.values()):
        if str(getattr(module, "__file__", "") or "").startswith(str(folder)):
            event = getattr(module, "RELEASE", None)
            if event is not None:
                event.set()


@pytest.fixture
async def plugins(services: Services, settings: Settings) -> AsyncIterator[PluginHost]:
    """The services' own plugin host; stopped afterwards, and whatever the fixture plugins left behind
    (notifier kinds in the module-global registry, hung threads) is cleaned up even if a test failed."""
    kinds_before = set(kinds.names())
    yield services.plugins
    try:
        await services.plugins.stop()
    finally:
        for name in set(kinds.names()) - kinds_before:
            kinds.unregister(name)
        release_hung(plugin_dir(settings))


@pytest.fixture
def kind_name() -> Callable[[], str]:
    """A notifier kind name no other test uses (the registry is shared by the whole process)."""
    return lambda: f"fx{uuid.uuid4().hex[:10]}"


# -- 1. raising while importing ------------------------------------------------------------------------


async def test_a_plugin_that_raises_at_import_fails_loads_nothing_and_can_be_retried(
    services: Services, settings: Settings, plugins: PluginHost
) -> None:
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    path = write_plugin(
        settings,
        "bad-import",
        header("bad-import")
        + textwrap.dedent(
            """
            from nox_ui.plugin import NavItem, hookimpl

            @hookimpl
            def nav_items(ctx):
                return [NavItem("Bad import", "/plugins/bad-import/")]

            raise ZeroDivisionError("the module is broken on purpose")
            """
        ),
    )
    await plugins.enable(CLI, "good-one")

    failed = await plugins.enable(CLI, "bad-import")

    assert failed.status == PluginStatus.FAILED and failed.enabled
    assert "import" in failed.reason and "ZeroDivisionError" in failed.reason
    assert "the module is broken on purpose" in failed.reason
    assert 'raise ZeroDivisionError("the module is broken on purpose")' in failed.traceback
    assert "Bad import" not in nav_labels(services)
    assert not plugins.is_active("bad-import") and plugins.context("bad-import") is None
    # the panel and the other plugin go on
    assert (await view(services, "good-one")).status == PluginStatus.ENABLED
    assert "Good one" in nav_labels(services)
    assert_panel_serves(services)

    # the author fixes the file; enabling again tries again
    path.write_text(textwrap.dedent(path.read_text().replace("raise ZeroDivisionError", "# fixed: ")))
    fixed = await plugins.enable(CLI, "bad-import")
    assert fixed.status == PluginStatus.ENABLED and fixed.reason == "" and fixed.traceback == ""
    assert "Bad import" in nav_labels(services) and "Good one" in nav_labels(services)


# -- 2. raising in a hook ------------------------------------------------------------------------------


async def test_a_plugin_that_raises_in_a_hook_fails_and_what_it_offered_is_withdrawn(
    services: Services, settings: Settings, plugins: PluginHost, tmp_path: Path
) -> None:
    stopped = tmp_path / "boom-shutdown"
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    write_plugin(
        settings,
        "boom",
        header("boom")
        + textwrap.dedent(
            f"""
            from pathlib import Path
            from pydantic import BaseModel, Field
            from nox_ui.plugin import Collector, MetricSpec, hookimpl

            class BoomSettings(BaseModel):
                level: int = Field(3, ge=1, le=9, description="How loud.")

            class BoomCollector(Collector):
                name = "boom"
                specs = (MetricSpec("boom.value", "count", "a value", (), "boom"),)

                def collect(self, now):
                    return {{"boom.value": 1.0}}

            @hookimpl
            def settings_schema(ctx):
                return BoomSettings

            @hookimpl
            def metric_collectors(ctx):
                return [BoomCollector()]

            @hookimpl
            def nav_items(ctx):
                raise RuntimeError("boom")

            @hookimpl
            def shutdown(ctx):
                Path({str(stopped)!r}).write_text("stopped")
            """
        ),
    )
    await plugins.enable(CLI, "good-one")

    failed = await plugins.enable(CLI, "boom")

    assert failed.status == PluginStatus.FAILED
    assert "hook nav_items" in failed.reason and "RuntimeError" in failed.reason and "boom" in failed.reason
    assert 'raise RuntimeError("boom")' in failed.traceback
    # nothing it offered stays: no collector, no metric in a sample, no settings
    assert "boom" not in collector_names(services)
    assert "boom.value" not in services.metrics.sampler.sample().values
    assert "boom" not in services.plugin_settings.plugins()
    with pytest.raises(NotFound):
        services.plugin_settings.update(CLI, "boom", {"level": 5})
    assert failed.has_settings is False and failed.metrics == ()
    assert stopped.read_text() == "stopped"  # its startup ran, so it was given the chance to close
    assert "Good one" in nav_labels(services)
    assert_panel_serves(services)


# -- 3. hanging ----------------------------------------------------------------------------------------

HANGS = {
    "a sync startup that blocks": (
        """
        import threading
        from nox_ui.plugin import hookimpl

        RELEASE = threading.Event()

        @hookimpl
        def startup(ctx):
            RELEASE.wait()
        """,
        ["hook startup", "did not return within 0.5 s"],
    ),
    "an async startup that never finishes": (
        """
        import asyncio
        from nox_ui.plugin import hookimpl

        @hookimpl
        async def startup(ctx):
            await asyncio.sleep(3600)
        """,
        ["hook startup", "within 0.5 s"],
    ),
    "an import that blocks": (
        """
        import threading

        RELEASE = threading.Event()
        RELEASE.wait()
        """,
        ["import", "did not return within 0.5 s"],
    ),
}


@pytest.mark.parametrize("case", list(HANGS))
async def test_a_plugin_that_hangs_fails_within_the_hook_timeout(
    services: Services, settings: Settings, plugins: PluginHost, case: str
) -> None:
    source, expected = HANGS[case]
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    write_plugin(settings, "hangs", header("hangs") + textwrap.dedent(source))
    plugins.hook_timeout = 0.5

    # bounded: a host that waited for the hook would not finish here
    failed = await asyncio.wait_for(plugins.enable(CLI, "hangs"), WAIT)

    assert failed.status == PluginStatus.FAILED
    for words in expected:
        assert words in failed.reason
    assert not plugins.is_active("hangs")
    # the loop was never blocked: another plugin enables and the panel serves
    assert (await plugins.enable(CLI, "good-one")).status == PluginStatus.ENABLED
    assert "Good one" in nav_labels(services)
    assert_panel_serves(services)
    # a hung thread that returns later does not bring the plugin back
    release_hung(plugin_dir(settings))
    assert (await view(services, "hangs")).status == PluginStatus.FAILED


# -- 4. returning garbage ------------------------------------------------------------------------------

GARBAGE = {
    "nav_items": ('return "not a list"', ["nav_items returned str", "expected a list of NavItem"]),
    "metric_collectors": (
        "return [object()]",
        ["metric_collectors returned a list holding object", "expected a list of Collector"],
    ),
    "dashboard_widgets": ("return {'title': 'x'}", ["dashboard_widgets returned dict", "list of Widget"]),
    "api_routes": ("return 42", ["api_routes returned int", "expected an APIRouter or ApiRoutes"]),
}


@pytest.mark.parametrize("hook", list(GARBAGE))
async def test_a_plugin_that_returns_garbage_fails_saying_what_it_returned(
    services: Services, settings: Settings, plugins: PluginHost, hook: str
) -> None:
    body, expected = GARBAGE[hook]
    write_plugin(
        settings,
        "garbage",
        header("garbage")
        + textwrap.dedent(
            f"""
            from nox_ui.plugin import hookimpl

            @hookimpl
            def {hook}(ctx):
                {body}
            """
        ),
    )
    collectors_before = collector_names(services)

    failed = await plugins.enable(CLI, "garbage")

    assert failed.status == PluginStatus.FAILED
    assert f"hook {hook}" in failed.reason
    for words in expected:
        assert words in failed.reason
    assert collector_names(services) == collectors_before
    assert "garbage" not in plugins.api_routes()
    assert_panel_serves(services)


# -- 5. a misnamed hook --------------------------------------------------------------------------------


async def test_a_hookimpl_that_is_not_a_hook_fails_naming_it(
    services: Services, settings: Settings, plugins: PluginHost
) -> None:
    write_plugin(
        settings,
        "typo",
        header("typo")
        + textwrap.dedent(
            """
            from nox_ui.plugin import NavItem, hookimpl

            @hookimpl
            def nav_itemz(ctx):
                return [NavItem("Typo", "/plugins/typo/")]
            """
        ),
    )

    failed = await plugins.enable(CLI, "typo")

    assert failed.status == PluginStatus.FAILED
    assert "'nav_itemz'" in failed.reason and "not a hook" in failed.reason
    assert "Typo" not in nav_labels(services)
    assert_panel_serves(services)


# -- 6. another panel version --------------------------------------------------------------------------


async def test_an_incompatible_plugin_is_listed_and_cannot_be_enabled(
    services: Services, settings: Settings, plugins: PluginHost, tmp_path: Path
) -> None:
    marker = tmp_path / "future-imported"
    write_plugin(
        settings,
        "future",
        header("future", panel=">=99")
        + textwrap.dedent(
            f"""
            from pathlib import Path
            from nox_ui.plugin import NavItem, hookimpl

            Path({str(marker)!r}).write_text("imported")

            @hookimpl
            def nav_items(ctx):
                return [NavItem("Future", "/plugins/future/")]
            """
        ),
    )

    (listed,) = await folder_views(services, settings)
    assert listed.name == "future" and listed.status == PluginStatus.INCOMPATIBLE and not listed.enabled
    assert ">=99" in listed.reason and __version__ in listed.reason

    with pytest.raises(Conflict, match="cannot be enabled"):
        await plugins.enable(CLI, "future")

    assert services.plugin_catalog.decisions() == {}
    assert (await view(services, "future")).status == PluginStatus.INCOMPATIBLE
    assert not marker.exists() and "Future" not in nav_labels(services)
    assert_panel_serves(services)


# -- 7. an unsafe plugins folder or file -----------------------------------------------------------------


async def test_every_plugin_in_a_folder_writable_by_others_is_refused(
    services: Services, settings: Settings, plugins: PluginHost, tmp_path: Path
) -> None:
    marker = tmp_path / "planted-imported"
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    write_plugin(
        settings,
        "planted",
        header("planted") + f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n",
        as_file=True,
    )
    plugin_dir(settings).chmod(0o777)

    listed = await folder_views(services, settings)

    assert {v.name: v.status for v in listed} == {
        "good-one": PluginStatus.REFUSED,
        "planted": PluginStatus.REFUSED,
    }
    for refused in listed:
        assert "writable by others" in refused.reason and str(plugin_dir(settings)) in refused.reason
        with pytest.raises(Conflict, match="writable by others"):
            await plugins.enable(CLI, refused.name)
    assert services.plugin_catalog.decisions() == {}
    assert not marker.exists() and "Good one" not in nav_labels(services)
    assert_panel_serves(services)


async def test_a_group_writable_plugin_file_is_refused_until_it_is_made_safe(
    services: Services, settings: Settings, plugins: PluginHost, tmp_path: Path
) -> None:
    marker = tmp_path / "loose-imported"
    loose = write_plugin(
        settings,
        "loose",
        header("loose")
        + textwrap.dedent(
            f"""
            from pathlib import Path
            from nox_ui.plugin import NavItem, hookimpl

            Path({str(marker)!r}).write_text("imported")

            @hookimpl
            def nav_items(ctx):
                return [NavItem("Loose", "/plugins/loose/")]
            """
        ),
        as_file=True,
    )
    loose.chmod(0o620)

    (refused,) = await folder_views(services, settings)

    assert refused.name == "loose" and refused.status == PluginStatus.REFUSED
    assert "writable by its group" in refused.reason and str(loose) in refused.reason
    with pytest.raises(Conflict, match="writable by its group"):
        await plugins.enable(CLI, "loose")
    assert services.plugin_catalog.decisions() == {}
    assert not marker.exists() and "Loose" not in nav_labels(services)
    assert_panel_serves(services)

    loose.chmod(0o600)  # what the log line asks for: `chmod go-w`
    (safe,) = await folder_views(services, settings)
    assert safe.status == PluginStatus.DISABLED and safe.reason == ""
    assert (await plugins.enable(CLI, "loose")).status == PluginStatus.ENABLED
    assert marker.exists() and "Loose" in nav_labels(services)


async def test_importing_a_plugin_does_not_make_its_folder_unsafe(
    services: Services,
    settings: Settings,
    plugins: PluginHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python caches bytecode in a `__pycache__` beside the source, created under the process umask: with
    umask 002 (common for user sessions) it would be group-writable, and the next look at the folder
    (a restart) would refuse every plugin in it because of the panel's own import."""
    write_plugin(settings, "cached", good_plugin("cached", "Cached"))
    write_plugin(settings, "single", good_plugin("single", "Single"), as_file=True)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # the test run sets PYTHONDONTWRITEBYTECODE
    previous = os.umask(0o002)
    try:
        for name in ("cached", "single"):
            assert (await plugins.enable(CLI, name)).status == PluginStatus.ENABLED
    finally:
        os.umask(previous)
    assert list(plugin_dir(settings).rglob("*.pyc"))  # bytecode was written

    await plugins.stop()  # the panel restarts
    assert {v.name: (v.status, v.reason) for v in await folder_views(services, settings)} == {
        "cached": (PluginStatus.DISABLED, ""),
        "single": (PluginStatus.DISABLED, ""),
    }
    await plugins.start()
    assert (await view(services, "cached")).status == PluginStatus.ENABLED
    assert (await view(services, "single")).status == PluginStatus.ENABLED
    assert "Cached" in nav_labels(services) and "Single" in nav_labels(services)


# -- 8. enabling and disabling live ------------------------------------------------------------------------


def full_plugin(name: str, kind: str) -> str:
    """A plugin offering one of everything: a collector, a menu entry, a widget, a page and a notifier kind."""
    return header(name) + textwrap.dedent(
        f"""
        from nicegui import ui
        from pydantic import BaseModel, ConfigDict, Field
        from nox_ui.plugin import (
            Collector, FormField, MetricSpec, NavItem, NotifierKind, Page, Widget, hookimpl,
        )

        class FixtureCollector(Collector):
            name = "fixture"
            specs = (MetricSpec("fixture.value", "count", "a fixture value", (), "fixture"),)

            def collect(self, now):
                return {{"fixture.value": 42.0}}

        class KindConfig(BaseModel):
            model_config = ConfigDict(extra="forbid", strict=True)
            room: str = Field(min_length=1)

        class FixtureKind(NotifierKind):
            name = "{kind}"
            label = "Fixture"
            config_model = KindConfig
            config_doc = '{{"room": "..."}}'
            fields = (FormField("room", "Room"),)

            async def send(self, config, message, context):
                SENT.append((config["room"], message.rule_name))  # what a test could read back

        SENT = []

        def build(user):
            ui.label(f"Fixture for {{user.username}}")

        @hookimpl
        def metric_collectors(ctx):
            return [FixtureCollector()]

        @hookimpl
        def notifier_kinds(ctx):
            return [FixtureKind()]

        @hookimpl
        def register_pages(ctx):
            return [Page("/", build, title="Fixture")]

        @hookimpl
        def nav_items(ctx):
            return [NavItem("Fixture menu", "/plugins/{name}/")]

        @hookimpl
        def dashboard_widgets(ctx):
            return [Widget("Fixture widget", build)]
        """
    )


def widget_titles(services: Services) -> list[str]:
    return [widget.title for _name, widget in services.plugins.widgets(PANEL)]


async def test_enabling_and_disabling_a_plugin_adds_and_withdraws_everything_live(
    services: Services, settings: Settings, plugins: PluginHost, kind_name: Callable[[], str]
) -> None:
    kind = kind_name()
    write_plugin(settings, "fixture", full_plugin("fixture", kind))

    async def assert_on() -> None:
        found = await view(services, "fixture")
        assert found.status == PluginStatus.ENABLED and found.enabled
        assert found.metrics == ("fixture.value",) and found.notifier_kinds == (kind,)
        assert found.pages == ("/plugins/fixture/",)
        assert "fixture" in collector_names(services)
        assert services.metrics.sampler.sample().values["fixture.value"] == 42.0
        assert "Fixture menu" in nav_labels(services)
        assert "Fixture widget" in widget_titles(services)
        assert plugins.page("fixture", "/") is not None
        assert kinds.find(kind) is not None

    assert (await plugins.enable(CLI, "fixture")).status == PluginStatus.ENABLED
    await assert_on()

    off = await plugins.disable(CLI, "fixture")

    assert off.status == PluginStatus.DISABLED and not off.enabled
    assert kinds.find(kind) is None
    assert "fixture" not in collector_names(services)
    assert "fixture.value" not in services.metrics.sampler.sample().values
    assert "fixture.value" in services.metrics.specs  # its history stays readable
    assert "Fixture menu" not in nav_labels(services) and "Fixture widget" not in widget_titles(services)
    assert plugins.page("fixture", "/") is None
    assert_panel_serves(services)

    await plugins.enable(CLI, "fixture")
    await assert_on()


async def test_a_plugins_settings_are_validated_stored_and_outlive_a_disable(
    services: Services, settings: Settings, plugins: PluginHost
) -> None:
    write_plugin(
        settings,
        "tuned",
        header("tuned")
        + textwrap.dedent(
            """
            from pydantic import BaseModel, ConfigDict, Field
            from nox_ui.plugin import hookimpl

            class TunedSettings(BaseModel):
                model_config = ConfigDict(extra="forbid", strict=True)
                threshold: int = Field(10, ge=1, le=99, description="Warn above this.")
                label: str = Field("tuned", max_length=20, description="What to call it.")

            @hookimpl
            def settings_schema(ctx):
                return TunedSettings
            """
        ),
    )
    enabled = await plugins.enable(CLI, "tuned")
    assert enabled.has_settings and services.plugin_settings.values("tuned") == {
        "threshold": 10,
        "label": "tuned",
    }

    with pytest.raises(InvalidSettings, match="threshold") as refused:
        services.plugin_settings.update(CLI, "tuned", {"threshold": 500, "label": "kept"})
    assert set(refused.value.errors) == {"threshold"}
    assert services.plugin_settings.values("tuned")["label"] == "tuned"  # all or nothing

    services.plugin_settings.update(CLI, "tuned", {"threshold": 42})
    ctx = plugins.context("tuned")
    assert ctx is not None and ctx.settings.model_dump() == {"threshold": 42, "label": "tuned"}

    await plugins.disable(CLI, "tuned")
    assert plugins.context("tuned") is None and "tuned" not in services.plugin_settings.plugins()
    await plugins.enable(CLI, "tuned")

    ctx = plugins.context("tuned")
    assert ctx is not None and ctx.settings.model_dump() == {"threshold": 42, "label": "tuned"}


# -- 9. new plugins start disabled ---------------------------------------------------------------------


async def test_a_new_plugin_is_listed_disabled_and_none_of_its_code_ran(
    services: Services, settings: Settings, plugins: PluginHost, tmp_path: Path
) -> None:
    marker = tmp_path / "fresh-imported"
    write_plugin(
        settings,
        "fresh",
        header("fresh")
        + textwrap.dedent(
            f"""
            from pathlib import Path
            from nox_ui.plugin import NavItem, hookimpl

            Path({str(marker)!r}).write_text("imported")

            @hookimpl
            def nav_items(ctx):
                return [NavItem("Fresh", "/plugins/fresh/")]
            """
        ),
    )

    (listed,) = await folder_views(services, settings)

    assert (listed.name, listed.version, listed.status, listed.enabled) == ("fresh", "1.0", "disabled", False)
    assert listed.reason == "" and listed.pages == ()
    assert not marker.exists()
    assert "Fresh" not in nav_labels(services)
    assert services.plugin_catalog.decisions() == {}

    await plugins.enable(CLI, "fresh")  # an admin's decision is what runs it
    assert marker.read_text() == "imported" and "Fresh" in nav_labels(services)


# -- 10. decisions made elsewhere (the CLI) ----------------------------------------------------------


async def test_reconcile_loads_and_unloads_what_the_catalog_decided(
    services: Services, settings: Settings, plugins: PluginHost
) -> None:
    write_plugin(settings, "from-cli", good_plugin("from-cli", "From CLI"))

    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "from-cli")  # `nox-ui plugins enable`
    assert (await view(services, "from-cli")).status == PluginStatus.DISABLED  # not loaded yet
    await plugins.reconcile("from-cli")
    assert (await view(services, "from-cli")).status == PluginStatus.ENABLED
    assert "From CLI" in nav_labels(services)

    await asyncio.to_thread(services.plugin_catalog.disable, CLI, "from-cli")
    await plugins.reconcile("from-cli")
    assert (await view(services, "from-cli")).status == PluginStatus.DISABLED
    assert "From CLI" not in nav_labels(services)


async def test_the_running_host_picks_up_a_decision_made_by_the_cli(
    services: Services, settings: Settings, plugins: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "WATCH_SECONDS", 0.05)
    write_plugin(settings, "from-cli", good_plugin("from-cli", "From CLI"))
    await plugins.start()

    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "from-cli")
    await wait_for_status(services, "from-cli", PluginStatus.ENABLED)
    assert "From CLI" in nav_labels(services)

    await asyncio.to_thread(services.plugin_catalog.disable, CLI, "from-cli")
    await wait_for_status(services, "from-cli", PluginStatus.DISABLED)
    assert "From CLI" not in nav_labels(services)
    assert_panel_serves(services)


def count_calls(monkeypatch: pytest.MonkeyPatch, services: Services) -> list[int]:
    """Counts the watch's reads of the stored decisions: one per tick (a way to wait for ticks, not time)."""
    calls = [0]
    read = services.plugin_catalog.records

    def counted() -> dict[str, PluginRecord]:
        calls[0] += 1
        return read()

    monkeypatch.setattr(services.plugin_catalog, "records", counted)
    return calls


async def wait_for_ticks(calls: list[int], ticks: int) -> None:
    async def ticked() -> None:
        target = calls[0] + ticks
        while calls[0] < target:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(ticked(), WAIT)


async def test_the_running_host_loads_a_plugin_dropped_in_later_and_enabled_by_the_cli(
    services: Services, settings: Settings, plugins: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual install: the panel runs, a plugin is copied into the folder, `nox-ui plugins enable`."""
    monkeypatch.setattr(host_module, "WATCH_SECONDS", 0.05)
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    await plugins.start()
    assert [v.name for v in await folder_views(services, settings)] == ["good-one"]

    write_plugin(settings, "dropped", good_plugin("dropped", "Dropped"))
    cli = PluginCatalog(services.db, services.audit, plugin_dir(settings))  # the CLI's process, its own look
    await asyncio.to_thread(cli.enable, CLI, "dropped")

    # waiting on what is loaded, not on `view` (which would look in the folder itself)
    await wait_until(lambda: plugins.is_active("dropped"))
    assert "Dropped" in nav_labels(services)
    assert (await view(services, "dropped")).status == PluginStatus.ENABLED


async def test_the_watch_skips_a_removed_plugin_and_applies_the_other_decisions(
    services: Services, settings: Settings, plugins: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "WATCH_SECONDS", 0.05)
    gone = write_plugin(settings, "gone", good_plugin("gone", "Gone"))
    write_plugin(settings, "later", good_plugin("later", "Later"))
    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "gone")
    shutil.rmtree(gone.parent)  # deleted without being disabled first
    assert {v.name for v in await folder_views(services, settings)} == {"later"}
    await plugins.start()

    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "later")

    await wait_for_status(services, "later", PluginStatus.ENABLED)
    assert "Later" in nav_labels(services) and "Gone" not in nav_labels(services)


async def test_an_enabled_plugin_that_is_refused_does_not_make_open_pages_refresh_on_every_tick(
    services: Services, settings: Settings, plugins: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "WATCH_SECONDS", 0.05)
    path = write_plugin(settings, "loosened", good_plugin("loosened", "Loosened"))
    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "loosened")
    path.chmod(0o660)  # someone loosened it after it was enabled
    (refused,) = await folder_views(services, settings)
    assert refused.status == PluginStatus.REFUSED and refused.enabled
    changes: list[str] = []
    plugins.changed.connect(changes.append)  # what the dashboard and /admin/plugins re-render on
    ticks = count_calls(monkeypatch, services)
    await plugins.start()

    await wait_for_ticks(ticks, 3)
    settled = len(changes)
    await wait_for_ticks(ticks, 3)

    assert len(changes) == settled
    assert (await view(services, "loosened")).status == PluginStatus.REFUSED
    assert "Loosened" not in nav_labels(services)


async def test_at_start_a_broken_enabled_plugin_fails_and_the_others_load(
    services: Services, settings: Settings, plugins: PluginHost
) -> None:
    write_plugin(settings, "good-one", good_plugin("good-one", "Good one"))
    write_plugin(settings, "bad-start", header("bad-start") + "raise ImportError('missing dependency')\n")
    for name in ("bad-start", "good-one"):  # decided earlier, e.g. by the CLI while the panel was down
        await asyncio.to_thread(services.plugin_catalog.enable, CLI, name)

    await plugins.start()

    bad = await view(services, "bad-start")
    assert bad.status == PluginStatus.FAILED and "missing dependency" in bad.reason
    assert (await view(services, "good-one")).status == PluginStatus.ENABLED
    assert "Good one" in nav_labels(services)
    assert_panel_serves(services)
