"""`nox-ui plugins list|enable|disable|info`: the catalog alone (no runtime), audited as the CLI, every
failure one line and exit 1; `plugins list` in a fresh interpreter loads none of the runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nox_ui import __version__
from nox_ui.config import Settings
from nox_ui.plugins import discovery
from nox_ui.server import prepare_core
from tests.test_cli import run
from tests.test_core_imports import ROOT, RUNTIME_ONLY


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As tests/test_cli.py's: the commands find it through NOX_DATA_DIR."""
    monkeypatch.setenv("NOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NOX_DATABASE_URL", raising=False)
    return tmp_path / "data"


def write_plugin(data_dir: Path, name: str, *, panel: str = ">=0.1", extra: str = "") -> Path:
    """A single-file plugin in DATA_DIR/plugins that only its owner may write (as discovery wants)."""
    folder = data_dir / "plugins"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{name.replace('-', '_')}.py"
    meta = {
        "name": name,
        "version": "2.5.0",
        "description": "Watches the UPS",
        "author": "Fixture Co",
        "homepage": "https://example.org/ups",
        "panel": panel,
    }
    path.write_text(f"PLUGIN = {meta!r}\n" + textwrap.dedent(extra), encoding="utf-8")
    path.chmod(0o600)
    return path


def rows(out: str) -> dict[str, list[str]]:
    """`plugins list` as {name: [version, state, source]}."""
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATE", "SOURCE"]
    return {parts[0]: parts[1:] for parts in (line.split(maxsplit=3) for line in lines[1:])}


@pytest.fixture
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the plugins folder counts, whatever this virtualenv has installed."""
    monkeypatch.setattr(discovery, "_from_entry_points", list)


def test_list_enable_info_disable(data_dir: Path, capsys, monkeypatch, no_installed_plugins) -> None:
    path = write_plugin(data_dir, "ups")
    code, out, err = run(["plugins", "list"], capsys, monkeypatch)
    assert code == 0 and err == ""
    assert rows(out) == {"ups": ["2.5.0", "disabled", str(path)]}

    code, out, err = run(["plugins", "enable", "ups"], capsys, monkeypatch)
    assert code == 0 and err == ""
    assert out == "plugin 'ups' enabled; a running panel loads it within 5 s\n"
    code, out, _ = run(["plugins", "list"], capsys, monkeypatch)
    assert rows(out)["ups"][1] == "enabled"

    code, out, _ = run(["plugins", "info", "ups"], capsys, monkeypatch)
    assert code == 0
    info = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert {key: value.strip() for key, value in info.items()} == {
        "name": "ups",
        "version": "2.5.0",
        "description": "Watches the UPS",
        "author": "Fixture Co",
        "homepage": "https://example.org/ups",
        "panel": ">=0.1",
        "source": str(path),
        "module": str(path),
        "state": "enabled",
        "reason": "-",
    }

    code, out, _ = run(["plugins", "disable", "ups", "--data-dir", str(data_dir)], capsys, monkeypatch)
    assert code == 0 and out == "plugin 'ups' disabled; a running panel unloads it within 5 s\n"
    core = prepare_core(Settings(data_dir=data_dir))
    try:
        assert core.plugin_catalog.decisions() == {"ups": False}
        events = core.audit.query(action="plugin", limit=10).events
        assert [(e.action, e.actor_name, e.target_label) for e in reversed(events)] == [
            ("plugin.enable", "system", "ups"),
            ("plugin.disable", "system", "ups"),
        ]
        assert json.loads(events[0].details)["was_enabled"] is True
        assert core.audit.verify().ok
    finally:
        core.close()


def test_no_plugins_found(data_dir: Path, capsys, monkeypatch, no_installed_plugins) -> None:
    code, out, err = run(["plugins", "list"], capsys, monkeypatch)
    assert (code, out, err) == (0, "no plugins found\n", "")


@pytest.mark.parametrize("action", ["enable", "disable", "info"])
def test_an_unknown_name_is_one_line_and_exit_1(data_dir: Path, capsys, monkeypatch, action: str) -> None:
    write_plugin(data_dir, "ups")
    code, out, err = run(["plugins", action, "nope"], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("nox-ui: error: no plugin named 'nope'; ")


def test_an_incompatible_plugin_cannot_be_enabled(
    data_dir: Path, capsys, monkeypatch, no_installed_plugins
) -> None:
    write_plugin(data_dir, "future", panel=">=99")
    code, out, _ = run(["plugins", "list"], capsys, monkeypatch)
    assert rows(out)["future"][1] == "incompatible"
    code, out, err = run(["plugins", "enable", "future"], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert err == (
        f"nox-ui: error: plugin 'future' cannot be enabled: it supports Nox UI >=99; this is {__version__}\n"
    )
    code, out, _ = run(["plugins", "info", "future"], capsys, monkeypatch)
    assert code == 0
    assert "state:       incompatible" in out
    assert f"reason:      it supports Nox UI >=99; this is {__version__}" in out
    core = prepare_core(Settings(data_dir=data_dir))
    try:
        assert core.plugin_catalog.decisions() == {}  # nothing stored, nothing audited as done
        assert core.audit.query(action="plugin.enable", limit=1).total == 0
    finally:
        core.close()


def test_a_plugin_in_an_unsafe_folder_is_refused(
    data_dir: Path, capsys, monkeypatch, no_installed_plugins
) -> None:
    # The group may write the file: anyone in it could run code as the panel. (The folder itself is
    # set back to 0700 whenever the data dir is prepared.)
    write_plugin(data_dir, "shared").chmod(0o660)
    code, out, _ = run(["plugins", "list"], capsys, monkeypatch)
    assert rows(out)["shared"][1] == "refused"
    code, out, err = run(["plugins", "enable", "shared"], capsys, monkeypatch)
    assert code == 1 and "is writable by its group" in err and err.count("\n") == 1
    code, out, _ = run(["plugins", "info", "shared"], capsys, monkeypatch)
    assert "state:       refused" in out and "writable by its group" in out


def test_enabling_runs_no_plugin_code(data_dir: Path, capsys, monkeypatch, no_installed_plugins) -> None:
    """The CLI only records the decision: the plugin's module is imported by a running panel, never here."""
    marker = data_dir / "imported"
    write_plugin(data_dir, "loud", extra=f"open({str(marker)!r}, 'w').close()\n")
    code, _, _ = run(["plugins", "enable", "loud"], capsys, monkeypatch)
    code, _, _ = run(["plugins", "info", "loud"], capsys, monkeypatch)
    assert code == 0 and not marker.exists()


def test_plugins_list_loads_none_of_the_runtime(data_dir: Path) -> None:
    """As tests/test_core_imports.py checks `users list`: in a fresh interpreter, `plugins list` loads
    no NiceGUI, web stack, runtime library, nor the plugin host (pluggy)."""
    write_plugin(data_dir, "ups")
    prepare_core(Settings(data_dir=data_dir)).close()  # migrated once, so the check below needs no alembic
    script = (
        "import sys, json\n"
        "from nox_ui.cli import main\n"
        "assert main(['plugins', 'list']) == 0\n"
        f"top = {{m.split('.')[0] for m in sys.modules}} & set({[*RUNTIME_ONLY, 'pluggy']!r})\n"
        "host = [m for m in sys.modules if m == 'nox_ui.plugins.host']\n"
        "print(json.dumps(sorted(top) + host))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOX_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    lines = done.stdout.strip().splitlines()
    assert any(line.startswith("ups ") and " disabled " in line for line in lines), done.stdout
    assert json.loads(lines[-1]) == []
