"""The core does not import the UI, and the CLI does not load the runtime: each checked in a fresh
interpreter, where `sys.modules` shows what a process really loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded by the runtime or the web layer only; the core and the CLI's users/audit commands need none.
RUNTIME_ONLY = (
    "nicegui",
    "fastapi",
    "starlette",
    "httpx",
    "apprise",
    "alembic",
    "psutil",
    "prometheus_client",
)


def _loaded_after(code: str, data_dir: Path) -> list[str]:
    script = (
        "import sys, json\n"
        f"{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(RUNTIME_ONLY)!r}))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOX_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_building_the_core_imports_no_nicegui_nor_the_runtime(tmp_path: Path) -> None:
    from nox_ui.config import Settings
    from nox_ui.server import prepare_core

    prepare_core(Settings(data_dir=tmp_path)).close()  # migrated once, so the check below needs no alembic
    loaded = _loaded_after(
        "import nox_ui.app\n"
        "from nox_ui.config import Settings\n"
        "from nox_ui.server import prepare_core\n"
        "core = prepare_core(Settings())\n"
        "core.users.list()\n"
        "core.close()",
        tmp_path,
    )
    assert loaded == []


def test_the_cli_lists_users_without_the_runtime(tmp_path: Path) -> None:
    from nox_ui.config import Settings
    from nox_ui.server import prepare_core

    prepare_core(Settings(data_dir=tmp_path)).close()
    loaded = _loaded_after("from nox_ui.cli import main\nmain(['users', 'list'])", tmp_path)
    assert loaded == []


def _run(code: str, data_dir: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOX_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_serve_loads_no_http_client_library_until_one_is_used(tmp_path: Path) -> None:
    """`serve` imports NiceGUI's Socket.IO server without the client side's requests/aiohttp (~14 MiB),
    and the web app is built without the API's route modules (built on the first API request); both
    libraries stay importable for what needs them later (apprise uses requests)."""
    from nox_ui.config import Settings
    from nox_ui.server import prepare_core

    prepare_core(Settings(data_dir=tmp_path)).close()
    loaded = _run(
        "import sys, json\n"
        "from nox_ui.server import import_socketio_server_only, prepare\n"
        "from nox_ui.config import Settings\n"
        "import_socketio_server_only()\n"
        "from nicegui import app, ui\n"
        "from nox_ui.web import mount_app\n"
        "services = prepare(Settings())\n"
        "mount_app(services)\n"
        "before = sorted({m.split('.')[0] for m in sys.modules} & {'requests', 'aiohttp'})\n"
        "before += sorted(m for m in sys.modules if m.startswith('nox_ui.api.routes'))\n"
        "import requests\n"
        "assert requests.Session\n"
        "services.close()\n"
        "print(json.dumps(before))",
        tmp_path,
    )
    assert loaded == []


def test_a_panel_with_no_plugin_enabled_loads_no_plugin_machinery(tmp_path: Path) -> None:
    """Until a plugin is enabled, the host neither looks for plugins nor imports pluggy or packaging
    (~6 MiB together): `make bench` (f) holds idle memory to a ratio of Glances'."""
    from nox_ui.config import Settings
    from nox_ui.server import prepare_core

    prepare_core(Settings(data_dir=tmp_path)).close()
    loaded = _run(
        "import asyncio, sys, json\n"
        "from nox_ui.server import prepare\n"
        "from nox_ui.config import Settings\n"
        "services = prepare(Settings())\n"
        "async def run():\n"
        "    await services.plugins.start()\n"
        "    await services.plugins.stop()\n"
        "asyncio.run(run())\n"
        "services.close()\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'pluggy', 'packaging'})))",
        tmp_path,
    )
    assert loaded == []
