"""Who may do what, in one place: roles, API token scopes, the principal acting (a user or the panel
itself), and the one check that pages, API routes, UI actions and services all call.

`check(actor, need, target, audit=...)` passes the actor back when it holds `need`; otherwise it
records the refusal as `access.denied` in the audit log and raises `Forbidden`. `refusal(actor, need)`
is its pure half (the reason, or None), for callers on the event loop that audit off it.

There is no "no actor" meaning "skip the check": the CLI, first-run setup and the panel's own jobs
act as `Principal.system(why)` (the audit log shows them as "system"), which callers name explicitly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn, Protocol

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

# -- scopes of API tokens ----------------------------------------------------------------------------

ALL_SCOPES = frozenset({"read", "write", "admin", "metrics:read"})
# A wider scope includes the narrower ones on this ladder; `metrics:read` stands alone.
SCOPE_LADDER = ("read", "write", "admin")
# What a route (or service call) for each role asks of a token's scopes.
SCOPE_FOR_ROLE = {Role.VIEWER: "read", Role.OPERATOR: "write", Role.ADMIN: "admin"}
# The scopes a role may put on a personal token: never more than the role itself could do.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset({"read", "metrics:read"}),
    Role.OPERATOR: frozenset({"read", "write", "metrics:read"}),
    Role.ADMIN: ALL_SCOPES,
}
METRICS_SCOPE = "metrics:read"


def scope_covers(held: Iterable[str], needed: str) -> bool:
    """Whether a credential holding `held` may act with (or hand out) `needed`."""
    held = frozenset(held)
    if needed in held:
        return True
    if needed not in SCOPE_LADDER:
        return False
    return any(scope in held for scope in SCOPE_LADDER[SCOPE_LADDER.index(needed) :])


# -- principals --------------------------------------------------------------------------------------

SYSTEM_NAME = "system"


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user (via a browser session or an API token), or the panel itself
    (`Principal.system(why)`: the CLI, first-run setup, scheduled jobs)."""

    user_id: int
    username: str
    role: Role
    display_name: str = ""
    via: str = "session"  # "session", "token" or "system"
    credential_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls, why: str) -> Principal:
        """The panel acting on its own or for the local operator (`why`: "cli", "setup", ...). It
        passes every check; it is no account (user id 0) and the audit log names it "system"."""
        return cls(
            user_id=0,
            username=SYSTEM_NAME,
            role=Role.ADMIN,
            display_name=why,
            via="system",
            scopes=ALL_SCOPES,
        )

    @property
    def is_system(self) -> bool:
        return self.via == "system"

    @property
    def label(self) -> str:
        return self.display_name or self.username


# The local operator at the command line, and first-run setup: name them, never pass "no actor".
CLI = Principal.system("cli")
SETUP = Principal.system("setup")
# The panel's own jobs (expiring sessions, rotating secrets, archiving on a schedule).
PANEL = Principal.system("panel")

# -- the check ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """What an action asks of its actor: at least `role`, and (given `scope`) a credential whose
    scopes cover it (a browser session holds every scope). With `grant`, the actor hands out `grant`
    scopes (a new personal token): each must be within the actor's role and covered by the actor's own
    credential."""

    role: Role
    scope: str = ""
    grant: frozenset[str] = frozenset()

    @classmethod
    def of(cls, need: Role | Need) -> Need:
        """A bare role checks the role only (services, pages: the request's scopes were checked at the
        API's door)."""
        return need if isinstance(need, Need) else cls(need)

    @classmethod
    def api(cls, role: Role) -> Need:
        """What an API route for `role` asks: the role, and the token scope that goes with it."""
        return cls(role, SCOPE_FOR_ROLE[role])


METRICS = Need(Role.VIEWER, METRICS_SCOPE)


@dataclass(frozen=True)
class Target:
    """What the refused action was aimed at, for the audit log ("page" /path, "api" GET /x, "user" ...)."""

    type: str
    id: str | int = ""
    label: str = ""


class Recorder(Protocol):
    def record_now(self, **kwargs: Any) -> Any: ...


def refusal(actor: Principal, need: Role | Need) -> str | None:
    """Why `actor` may not act with `need`, or None when it may. Pure: no audit, no database."""
    need = Need.of(need)
    if not actor.role.allows(need.role):
        return f"this needs the {need.role.value} role; you are {actor.role.value}"
    if need.scope and not scope_covers(actor.scopes, need.scope):
        return f"this token lacks the {need.scope!r} scope"
    if need.grant:
        allowed = ROLE_SCOPES[actor.role]
        if not need.grant <= allowed:
            above = ", ".join(sorted(need.grant - allowed))
            return (
                f"your role ({actor.role.value}) cannot grant {above}; "
                f"you may grant: {', '.join(sorted(allowed))}"
            )
        lacking = sorted(scope for scope in need.grant if not scope_covers(actor.scopes, scope))
        if lacking:
            return f"the credential of this request lacks {', '.join(lacking)}, so it cannot grant it"
    return None


def check(
    actor: Principal,
    need: Role | Need,
    target: Target,
    *,
    audit: Recorder,
    attempted: str = "",
    ip: str = "",
    details: Mapping[str, Any] | None = None,
) -> Principal:
    """The one authorization check: `actor` back when it holds `need`; otherwise the refusal is
    recorded as `access.denied` (with `attempted`, the reason and what was needed) and Forbidden raised.
    It writes to the database when it refuses: off the event loop, call it in a worker thread (or ask
    `refusal` first)."""
    reason = refusal(actor, need)
    if reason is None:
        return actor
    deny(actor, need, target, reason, audit=audit, attempted=attempted, ip=ip, details=details)


def deny(
    actor: Principal,
    need: Role | Need,
    target: Target,
    reason: str,
    *,
    audit: Recorder,
    attempted: str = "",
    ip: str = "",
    details: Mapping[str, Any] | None = None,
) -> NoReturn:
    """Record a refusal `check` found (or a caller found with `refusal`) and raise Forbidden."""
    need = Need.of(need)
    recorded: dict[str, Any] = {"reason": reason, "needs": need.role.value}
    if need.grant:
        recorded["grant"] = sorted(need.grant)
    if attempted:
        recorded["attempted"] = attempted
    recorded.update(details or {})
    audit.record_now(
        actor=actor,
        action="access.denied",
        outcome="denied",
        target_type=target.type[:32],
        target_id=str(target.id)[:128],
        target_label=target.label[:256],
        details=recorded,
        ip=ip,
    )
    raise Forbidden(reason)


def authorize(principal: Principal | None, minimum: Role) -> Principal:
    """Raise Forbidden unless the principal holds at least `minimum` (no audit: for reads whose
    refusal is not worth a record, and for code without an audit log)."""
    if principal is None:
        raise Forbidden("sign-in required")
    if not principal.role.allows(minimum):
        raise Forbidden(f"this needs the {minimum.value} role; you are {principal.role.value}")
    return principal
