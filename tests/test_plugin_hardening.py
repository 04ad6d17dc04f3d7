"""What a review of the plugin host found, each proven against the real host (and the real API where
routes are concerned): a plugin's `sys.exit()` and an async hook that ignores its cancellation cannot
stop the panel; a route that raises fails its plugin; enabling again mounts the routes (and role) of
now; plugin files owned by someone else are refused, also when they change after discovery; a
collector removed mid-sample loses nothing else; a failed plugin is retried by a later CLI decision;
secret plugin settings are encrypted, masked and audited as set/unset."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from nox_ui.api import API_PREFIX, create_api
from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.errors import NotFound
from nox_ui.metrics.collectors import Collector, Values
from nox_ui.metrics.sampler import CollectorHealth
from nox_ui.models import AuditEvent, PluginSetting
from nox_ui.plugins import host as host_module
from nox_ui.plugins.host import PluginHost, PluginStatus
from nox_ui.plugins.spec import NavItem
from nox_ui.roles import CLI
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer
from tests.test_plugin_isolation import (
    assert_panel_serves,
    header,
    plugins,  # noqa: F401  (the host fixture: stopped and cleaned up after each test)
    wait_for_status,
    write_plugin,
)


async def test_a_plugin_calling_sys_exit_fails_and_the_panel_goes_on(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    write_plugin(settings, "quitter", header("quitter") + "import sys\nsys.exit('bye')\n")
    write_plugin(
        settings,
        "quitter-hook",
        header("quitter-hook")
        + textwrap.dedent(
            """
            import sys
            from nox_ui.plugin import hookimpl

            @hookimpl
            async def startup(ctx):
                sys.exit("bye from a hook")
            """
        ),
    )
    at_import = await plugins.enable(CLI, "quitter")
    in_hook = await plugins.enable(CLI, "quitter-hook")
    assert at_import.status is PluginStatus.FAILED and "SystemExit" in at_import.reason
    assert in_hook.status is PluginStatus.FAILED and "SystemExit" in in_hook.reason
    assert_panel_serves(services)


async def test_an_async_hook_that_ignores_cancellation_does_not_block_other_plugins(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    plugins.hook_timeout = 0.5
    write_plugin(
        settings,
        "stubborn",
        header("stubborn")
        + textwrap.dedent(
            """
            import asyncio
            from nox_ui.plugin import hookimpl

            STOP = False

            @hookimpl
            async def startup(ctx):
                while not STOP:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        pass  # ignores being cancelled, on purpose
            """
        ),
    )
    write_plugin(settings, "after-it", header("after-it") + "x = 1\n")
    stubborn = await asyncio.wait_for(plugins.enable(CLI, "stubborn"), 30)
    assert stubborn.status is PluginStatus.FAILED and "did not finish within" in stubborn.reason
    # The host's lock is free: the next plugin is enabled at once.
    assert (await asyncio.wait_for(plugins.enable(CLI, "after-it"), 30)).status is PluginStatus.ENABLED
    import sys

    for module in list(sys.modules.values()):  # let the left-behind coroutine end
        if getattr(module, "__file__", "") and "stubborn" in str(module.__file__):
            setattr(module, "STOP", True)  # noqa: B010  (a fixture plugin's own flag)


ROUTE_PLUGIN = """
from fastapi import APIRouter
from nox_ui.plugin import ApiRoutes, hookimpl

VERSION = {version}

@hookimpl
def api_routes(ctx):
    router = APIRouter()

    @router.get("/version")
    def version():
        return {{"version": VERSION}}

    @router.get("/boom")
    def boom():
        return 1 / 0

    return ApiRoutes(router, role="{role}")
"""


@pytest.fixture
def api_client(accounts: Services) -> Iterator[TestClient]:
    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))
    # A route that raises reaches the client as the API's 500, not as the test's exception.
    with TestClient(outer, client=("203.0.113.9", 5000), raise_server_exceptions=False) as client:
        yield client


def test_routes_follow_each_enable_and_a_route_that_raises_fails_its_plugin(
    api_client: TestClient, accounts: Services, settings: Settings
) -> None:
    api = api_client
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    viewer = bearer(api, "victor", VIEWER_PASSWORD)
    write_plugin(settings, "routes", header("routes") + ROUTE_PLUGIN.format(version=1, role="viewer"))
    # Not enabled: 404 for everyone, as for a plugin that does not exist.
    assert api.get("/api/v1/plugins/routes/version").status_code == 404
    assert api.get("/api/v1/plugins/routes/version", headers=viewer).status_code == 404
    assert api.get("/api/v1/plugins/nothing-here/version").status_code == 404

    assert api.post("/api/v1/plugins/routes/enable", headers=admin).json()["status"] == "enabled"
    assert api.get("/api/v1/plugins/routes/version", headers=viewer).json() == {"version": 1}

    assert api.get("/api/v1/plugins/routes/version").status_code == 401  # enabled: a token is needed

    # A new version of the plugin asks for admins: after disable and enable, that is what is served.
    assert api.post("/api/v1/plugins/routes/disable", headers=admin).status_code == 200
    assert api.get("/api/v1/plugins/routes/version").status_code == 404
    write_plugin(settings, "routes", header("routes") + ROUTE_PLUGIN.format(version=2, role="admin"))
    assert api.post("/api/v1/plugins/routes/enable", headers=admin).json()["status"] == "enabled"
    assert api.get("/api/v1/plugins/routes/version", headers=viewer).status_code == 403
    assert api.get("/api/v1/plugins/routes/version", headers=admin).json() == {"version": 2}
    paths = [p for p in api.get("/api/v1/openapi.json").json()["paths"] if p.startswith("/plugins/routes")]
    assert sorted(paths) == ["/plugins/routes/boom", "/plugins/routes/version"]  # the old ones are gone

    # A route that raises: 500 naming the plugin, which is then failed and its routes 404.
    boom = api.get("/api/v1/plugins/routes/boom", headers=admin)
    assert boom.status_code == 500 and "'routes'" in boom.json()["detail"]
    listed = {p["name"]: p for p in api.get("/api/v1/plugins", headers=admin).json()}
    assert listed["routes"]["status"] == "failed" and "ZeroDivisionError" in listed["routes"]["reason"]
    assert api.get("/api/v1/plugins/routes/version", headers=admin).status_code == 404
    # The panel's own plugin routes are untouched by all this.
    assert api.get("/api/v1/plugins/routes", headers=admin).status_code == 200


async def test_a_plugin_file_owned_by_another_user_is_refused(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    path = write_plugin(settings, "foreign", header("foreign") + "x = 1\n", as_file=True)
    os.chown(path, 4321, 4321)  # the tests run as root, so this is possible here
    listed = await asyncio.to_thread(services.plugins.view, "foreign")
    assert listed.status is PluginStatus.REFUSED
    assert "owned by uid 4321" in listed.reason


async def test_a_plugin_made_unsafe_after_discovery_is_refused_at_import(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    path = write_plugin(settings, "later", header("later") + "x = 1\n", as_file=True)
    assert (await asyncio.to_thread(services.plugins.view, "later")).status is PluginStatus.DISABLED
    path.chmod(0o666)  # discovery's answer is cached; the import checks again
    failed = await plugins.enable(CLI, "later")
    assert failed.status is PluginStatus.FAILED and "writable by others" in failed.reason


async def test_the_panel_does_not_quietly_fix_an_unsafe_plugins_folder(settings: Settings) -> None:
    folder = settings.data_dir / "plugins"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    settings.prepare_data_dir()
    assert folder.stat().st_mode & 0o777 == 0o777  # reported as unsafe, not chmod-ed into looking safe
    assert (settings.data_dir / "logs").stat().st_mode & 0o777 == 0o700


class _Slow(Collector):
    name = "slow-removed"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def collect(self, now: float) -> Values:
        self.loop.call_soon_threadsafe(self.started.set)
        import time

        time.sleep(0.3)
        return {"slow.value": 1.0}


async def test_a_collector_removed_while_it_runs_costs_the_sample_nothing_else(services: Services) -> None:
    sampler = services.metrics.sampler
    slow = _Slow()
    sampler.add(slow)
    sampling = asyncio.ensure_future(sampler.sample_off_loop())
    await asyncio.wait_for(slow.started.wait(), 30)
    sampler.remove(slow.name)  # a plugin disabled mid-sample
    sample = await asyncio.wait_for(sampling, 30)
    assert "cpu.percent" in sample.values and "slow.value" not in sample.values
    assert slow.name not in sampler.health
    assert isinstance(sampler.health.get("cpu"), CollectorHealth)


async def test_a_failed_plugin_is_retried_when_the_cli_enables_it_again(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host_module, "WATCH_SECONDS", 0.05)
    path = write_plugin(settings, "flaky", header("flaky") + "raise RuntimeError('not yet')\n")
    assert (await plugins.enable(CLI, "flaky")).status is PluginStatus.FAILED
    await plugins.start()
    path.write_text(header("flaky") + "x = 1\n", encoding="utf-8")
    await asyncio.sleep(0.01)  # the decision must be stored after the failure
    await asyncio.to_thread(services.plugin_catalog.enable, CLI, "flaky")  # as `nox-ui plugins enable`
    await wait_for_status(services, "flaky", PluginStatus.ENABLED)


SECRET_PLUGIN = """
from pydantic import BaseModel, ConfigDict, Field
from nox_ui.plugin import hookimpl

class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    api_key: str = Field("", description="The UPS vendor's API key.", json_schema_extra={"secret": True})
    ratio: float = Field(1.0, description="A ratio.")

@hookimpl
def settings_schema(ctx):
    return Secrets
"""


async def test_a_secret_plugin_setting_is_encrypted_masked_and_audited_as_set(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    write_plugin(settings, "vault", header("vault") + SECRET_PLUGIN)
    assert (await plugins.enable(CLI, "vault")).status is PluginStatus.ENABLED
    store = services.plugin_settings
    diff = store.update(CLI, "vault", {"api_key": "s3cret-value"})
    assert [(c.key, c.old, c.new) for c in diff] == [("api_key", "unset", "set")]
    assert store.values("vault")["api_key"] is None
    assert store.secrets_set("vault") == {"api_key": True}
    assert services.plugins.context("vault").settings.api_key == "s3cret-value"  # type: ignore[union-attr]
    with services.db.session() as session:
        [row] = session.exec(select(PluginSetting).where(PluginSetting.plugin == "vault")).all()
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "plugin.settings.update")).all()
    assert "s3cret-value" not in row.value and row.value.startswith('"enc:')
    assert "s3cret-value" not in json.dumps([e.details for e in events])
    # Read back after a restart of the plugin: decrypted again.
    await plugins.disable(CLI, "vault")
    await plugins.enable(CLI, "vault")
    assert services.plugins.context("vault").settings.api_key == "s3cret-value"  # type: ignore[union-attr]
    # A number setting refuses what is not a finite number.
    from nox_ui.services.settings import InvalidSettings

    with pytest.raises(InvalidSettings) as refused:
        store.update(CLI, "vault", {"ratio": float("nan")})
    assert "ratio" in refused.value.errors


def test_a_menu_entry_cannot_point_to_another_site() -> None:
    for path in ("//evil.example", "/\\evil.example", "https://evil.example", "evil"):
        with pytest.raises(ValueError):
            NavItem("Out", path)
    assert NavItem("In", "/plugins/ok/").path == "/plugins/ok/"


async def test_a_package_plugin_enabled_again_runs_its_changed_submodule(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    init = write_plugin(
        settings,
        "parts",
        header("parts")
        + textwrap.dedent(
            """
            from nox_ui.plugin import NavItem, hookimpl
            from . import labels

            @hookimpl
            def nav_items(ctx):
                return [NavItem(labels.LABEL, "/plugins/parts/")]
            """
        ),
    )
    part = init.parent / "labels.py"
    part.write_text('LABEL = "First"\n', encoding="utf-8")
    part.chmod(0o600)
    await plugins.enable(CLI, "parts")
    assert "First" in [item.label for item in plugins.nav_items(CLI)]
    await plugins.disable(CLI, "parts")
    part.write_text('LABEL = "Second"\n', encoding="utf-8")
    await plugins.enable(CLI, "parts")
    labels = [item.label for item in plugins.nav_items(CLI)]
    assert "Second" in labels and "First" not in labels


async def test_an_uninstalled_plugin_can_still_be_disabled_but_not_enabled(
    services: Services,
    settings: Settings,
    plugins: PluginHost,  # noqa: F811
) -> None:
    path = write_plugin(settings, "gone", header("gone") + "x = 1\n", as_file=True)
    await plugins.enable(CLI, "gone")
    path.unlink()
    services.plugin_catalog.found(refresh=True)
    services.plugin_catalog.disable(CLI, "gone")  # so nothing named "gone" loads by itself later
    assert services.plugin_catalog.decisions() == {"gone": False}
    with pytest.raises(NotFound):
        services.plugin_catalog.enable(CLI, "gone")
