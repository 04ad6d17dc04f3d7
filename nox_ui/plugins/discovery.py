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
    return {
        "version": dist.version or "0",
        "description": md.get("Summary") or "",
        "author": author,
        "homepage": homepage,
        "panel": _panel_range(dist.requires or []),
    }


def _panel_range(requirements: list[str]) -> str:
    """The version specifier of the unconditional `nox-ui` requirement ('' when there is none)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) == "nox-ui" and requirement.marker is None:
            return str(requirement.specifier)
    return ""


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
    # Who can write the folder (or its bytecode cache) can drop a plugin in or replace one.
    unsafe = unsafe_reason(plugin_dir, recursive=False) or unsafe_reason(plugin_dir / "__pycache__")
    found = []
    for path in candidates:
        entry = path / "__init__.py" if path.is_dir() else path
        meta = _literal_plugin_dict(entry)
        name = str(meta.get("name") or path.stem).strip().lower().replace("_", "-")
        problem = unsafe or unsafe_reason(path)
        if problem:
            logger.error("refusing to load plugin {} from {}: {}", name, path, problem)
        found.append(_found(name, meta, source=str(path), module=str(path), refused=problem))
    return found


def unsafe_reason(path: Path, *, recursive: bool = True) -> str:
    """Why code at `path` (and, for a folder, everything in it, links followed) is unsafe to run as the
    panel, or '': writable by the group or others, or owned by someone other than the panel's user or
    root. A path that does not exist is no reason."""
    inside = recursive and path.is_dir()
    paths = [path, *path.rglob("*")] if inside else [path]
    me = os.geteuid()
    for item in paths:
        try:
            st = os.stat(item)  # follows links: what counts is what the import reads
        except OSError:
            continue
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = "others" if st.st_mode & stat.S_IWOTH else "its group"
            return f"{item} is writable by {who}; run `chmod go-w {item}`"
        if st.st_uid not in (me, 0):
            return f"{item} is owned by uid {st.st_uid}, not by the panel's user (uid {me}) or root"
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
