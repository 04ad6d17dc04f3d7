"""Finding plugins without running them: the `nox_ui.plugins` entry-point group, and modules or packages
in DATA_DIR/plugins.

Nothing here imports a plugin. Metadata comes from the installed distribution (entry points) or from a
literal `PLUGIN = {...}` dict read with `ast` from the file (the plugins folder), so a plugin nobody
enabled has run no code. The folder is refused as a whole when it, or anything in it, is writable by
the group or others: anyone who can write there could run code as the panel.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from dataclasses import dataclass
from importlib.metadata import Distribution, entry_points
from pathlib import Path
from typing import Any

from loguru import logger

from nox_ui.plugins.spec import NAME_RE, PluginInfo

ENTRY_POINT_GROUP = "nox_ui.plugins"
_META_KEYS = ("name", "version", "description", "author", "homepage", "panel")


@dataclass(frozen=True)
class Found:
    """A discovered plugin; `refused` says why it may not be enabled (an unsafe folder, a bad name)."""

    info: PluginInfo
    refused: str = ""


def discover(plugin_dir: Path) -> list[Found]:
    """Every plugin on offer, entry points first. A name found twice keeps the first (logged)."""
    out: dict[str, Found] = {}
    for item in [*_from_entry_points(), *_from_folder(plugin_dir)]:
        first = out.get(item.info.name)
        if first is not None:
            logger.warning(
                "plugin {!r} from {} ignored: {} has the same name",
                item.info.name,
                item.info.source,
                first.info.source,
            )
            continue
        out[item.info.name] = item
    return list(out.values())


def _from_entry_points() -> list[Found]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        meta: dict[str, Any] = dict(_dist_metadata(dist)) if dist is not None else {}
        module = ep.value.split(":")[0].strip()
        literal = _literal_plugin_dict(_module_file(module)) if "." not in module else {}
        meta.update({k: v for k, v in literal.items() if k in _META_KEYS and k != "name"})
        source = (
            f"entry point of {dist.metadata['Name']} {dist.version}" if dist is not None else "entry point"
        )
        found.append(_found(ep.name, meta, source=source, module=ep.value))
    return found


def _dist_metadata(dist: Distribution) -> dict[str, str]:
    md: Any = dist.metadata  # an email.message.Message underneath (`get`, `get_all`)
    homepage = md.get("Home-page") or ""
    for url in md.get_all("Project-URL") or []:
        label, _, value = url.partition(",")
        if not homepage or label.strip().lower() in {"homepage", "home"}:
            homepage = value.strip()
    author = md.get("Author") or md.get("Author-email") or ""
    panel = ""
    for requirement in dist.requires or []:
        match = re.match(r"^\s*nox[-_.]ui\s*(\[[^\]]*\])?\s*\(?([^;)]*)\)?\s*(;.*)?$", requirement, re.I)
        if match and not (match.group(3) or "").strip():
            panel = match.group(2).strip()
    return {
        "version": dist.version or "0",
        "description": md.get("Summary") or "",
        "author": author,
        "homepage": homepage,
        "panel": panel,
    }


def _module_file(module: str) -> Path | None:
    """The source file of a top-level module or package, found without importing it."""
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _from_folder(plugin_dir: Path) -> list[Found]:
    if not plugin_dir.is_dir():
        return []
    candidates = sorted(
        path
        for path in plugin_dir.iterdir()
        if not path.name.startswith((".", "_"))
        and ((path.suffix == ".py" and path.is_file()) or (path / "__init__.py").is_file())
    )
    unsafe = _writable_by_others(plugin_dir, recursive=False)  # anyone could drop a plugin in
    found = []
    for path in candidates:
        entry = path / "__init__.py" if path.is_dir() else path
        meta = _literal_plugin_dict(entry)
        name = str(meta.get("name") or path.stem).strip().lower().replace("_", "-")
        problem = unsafe or _writable_by_others(path)
        if problem:
            logger.error(
                "refusing to load plugin {} from {}: {}; run `chmod go-w` on it", name, path, problem
            )
        found.append(_found(name, meta, source=str(path), module=str(path), refused=problem))
    return found


def _writable_by_others(path: Path, *, recursive: bool = True) -> str:
    """Why `path` (and, for a folder, what is in it) is unsafe to load code from, or ''."""
    inside = recursive and path.is_dir()
    paths = [path, *(p for p in path.rglob("*") if not p.is_symlink())] if inside else [path]
    for item in paths:
        try:
            mode = os.stat(item).st_mode
        except OSError:
            continue
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = "others" if mode & stat.S_IWOTH else "its group"
            return f"{item} is writable by {who}"
    return ""


def _literal_plugin_dict(path: Path | None) -> dict[str, Any]:
    """The module's `PLUGIN = {...}` as data, read without running the module ({} when absent)."""
    if path is None:
        return {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "PLUGIN"
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: str(v) for k, v in value.items() if k in _META_KEYS} if isinstance(value, dict) else {}
    return {}


def _found(name: str, meta: dict[str, Any], *, source: str, module: str, refused: str = "") -> Found:
    info = PluginInfo(
        name=name,
        version=str(meta.get("version") or "0")[:40],
        description=str(meta.get("description") or "")[:300],
        author=str(meta.get("author") or "")[:120],
        homepage=str(meta.get("homepage") or "")[:300],
        panel=str(meta.get("panel") or "")[:80],
        source=source,
        module=module,
    )
    if not refused and not NAME_RE.match(name):
        refused = (
            f"invalid plugin name {name!r}: lower-case letters, digits, '-' and '_', starting with a letter, "
            "at most 40 characters"
        )
    return Found(info=info, refused=refused)


def incompatibility(info: PluginInfo, panel_version: str) -> str:
    """Why this panel version cannot run the plugin ('' when it can)."""
    if not info.panel:
        return ""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        supported = SpecifierSet(info.panel)
    except InvalidSpecifier:
        return f"its supported panel versions {info.panel!r} are not a version specifier"
    if supported.contains(panel_version, prereleases=True):
        return ""
    return f"it supports Nox UI {info.panel}; this is {panel_version}"
