"""What plugins hand the panel: the value types their hooks return, and the user a page or widget sees.

These are plain, frozen dataclasses with no NiceGUI or FastAPI in them, so the core can check what a
hook returned (and refuse garbage with a readable reason) without importing the UI. Plugins import
them from `nox_ui.plugin`, the public surface; nothing else of `nox_ui` is a stable API.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nox_ui.roles import Principal, Role

# A plugin's name: what its URLs (/plugins/<name>/, /api/v1/plugins/<name>/) and settings group use.
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9_\-./{}]*$")


def check_role(value: Role | str) -> Role:
    return value if isinstance(value, Role) else Role.parse(str(value))


@dataclass(frozen=True)
class PluginUser:
    """The signed-in person a plugin page, widget or route serves. `can(role)` is the role check."""

    username: str
    role: Role
    display_name: str = ""
    user_id: int = 0

    def can(self, role: Role | str) -> bool:
        return self.role.allows(check_role(role))

    @classmethod
    def of(cls, principal: Principal) -> PluginUser:
        return cls(principal.username, principal.role, principal.display_name, principal.user_id)


@dataclass(frozen=True)
class Page:
    """A screen at `/plugins/<plugin>/<path>` (`path` "/" is the plugin's own root). `build(user)` makes
    its content with NiceGUI inside the panel's frame; the panel checks `role` first (anonymous visitors
    go to sign-in, a lower role gets the 403 page). `build` may be async."""

    path: str
    build: Callable[[PluginUser], Any]
    title: str = ""
    role: Role | str = Role.VIEWER

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not _PATH_RE.match(self.path) or ".." in self.path:
            raise ValueError(f"a page path starts with '/' and holds only URL-safe characters: {self.path!r}")
        if not callable(self.build):
            raise ValueError("a page needs a build(user) function")
        object.__setattr__(self, "role", check_role(self.role))


@dataclass(frozen=True)
class NavItem:
    """An entry in the menu. `path` is a panel path; a plugin's own pages are under /plugins/<name>/.
    Icons are Material icon names. `order`: lower comes first (the built-in entries use 10 to 70)."""

    label: str
    path: str
    icon: str = "extension"
    role: Role | str = Role.VIEWER
    order: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip() or len(self.label) > 40:
            raise ValueError(f"a menu label is 1 to 40 characters: {self.label!r}")
        if (
            not isinstance(self.path, str)
            or not self.path.startswith("/")
            or self.path.startswith("//")
            or "\\" in self.path  # browsers read /\host as //host: another site
        ):
            raise ValueError(f"a menu path is a panel path starting with '/': {self.path!r}")
        object.__setattr__(self, "role", check_role(self.role))


@dataclass(frozen=True)
class Widget:
    """A card on the dashboard: `build(user)` makes its content with NiceGUI (it may start a
    `ui.timer` for live values; the timer ends with the page). `role`: who sees it."""

    title: str
    build: Callable[[PluginUser], Any]
    role: Role | str = Role.VIEWER
    order: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip() or len(self.title) > 60:
            raise ValueError(f"a widget title is 1 to 60 characters: {self.title!r}")
        if not callable(self.build):
            raise ValueError("a widget needs a build(user) function")
        object.__setattr__(self, "role", check_role(self.role))


@dataclass(frozen=True)
class ApiRoutes:
    """A FastAPI `APIRouter` mounted at /api/v1/plugins/<plugin>/. Every route of it needs a bearer
    token of at least `role` (and its scope); a route that needs more declares it with the dependency
    `require_role` from `nox_ui.plugin`. A bare router returned from the hook means role viewer."""

    router: Any
    role: Role | str = Role.VIEWER

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", check_role(self.role))


@dataclass(frozen=True)
class PluginInfo:
    """A plugin's metadata: from its distribution (entry-point plugins) or its `PLUGIN` dict (a module
    or package in DATA_DIR/plugins). `panel`: the panel versions it supports, as a version specifier
    such as ">=0.4,<0.6" (empty: any)."""

    name: str
    version: str = "0"
    description: str = ""
    author: str = ""
    homepage: str = ""
    panel: str = ""
    source: str = ""  # "entry point <dist>" or the file or folder it was found in
    module: str = ""  # what is imported when it is enabled
    extra: dict[str, Any] = field(default_factory=dict)
