"""Roles and the one authorization check used by pages, API routes and UI actions alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from nox_ui.errors import Forbidden, Invalid


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, minimum: Role) -> bool:
        return self.rank >= minimum.rank

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise Invalid(f"unknown role {value!r} (choose one of: {choices})") from None


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user (via a browser session or an API token)."""

    user_id: int
    username: str
    role: Role
    display_name: str = ""
    via: str = "session"  # "session" or "token"
    credential_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return self.display_name or self.username


def authorize(principal: Principal | None, minimum: Role) -> Principal:
    """Raise Forbidden unless the principal holds at least `minimum`."""
    if principal is None:
        raise Forbidden("sign-in required")
    if not principal.role.allows(minimum):
        raise Forbidden(f"this needs the {minimum.value} role; you are {principal.role.value}")
    return principal
