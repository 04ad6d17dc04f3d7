"""Roles and scopes in one place (`nox_ui.roles`): the one check and its audit, the explicit system
principal, and the races of the guards that keep an admin and cap tokens (real SQLite file, threads)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden, RateLimited
from nox_ui.models import AuditEvent, User
from nox_ui.roles import (
    CLI,
    METRICS,
    PANEL,
    SETUP,
    Need,
    Principal,
    Role,
    Target,
    check,
    refusal,
)
from nox_ui.services import auth as auth_module
from nox_ui.services.auth import LoginPolicy
from nox_ui.services.credentials import bearer_token
from tests.conftest import VIEWER_PASSWORD


def denied_events(services: Services) -> list[AuditEvent]:
    with services.db.session() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "access.denied")).all())


def principal_of(services: Services, username: str) -> Principal:
    user = services.users.get_by_username(username)
    assert user.id is not None
    return Principal(user_id=user.id, username=user.username, role=Role(user.role))


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result is its return value or its exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # the test looks at which one failed and how
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- the one check -----------------------------------------------------------------------------------


def test_check_passes_the_actor_back_or_audits_the_refusal(accounts: Services) -> None:
    viewer = principal_of(accounts, "victor")
    assert check(viewer, Role.VIEWER, Target("page", "/"), audit=accounts.audit) is viewer
    assert denied_events(accounts) == []
    with pytest.raises(Forbidden, match="needs the admin role"):
        check(viewer, Role.ADMIN, Target("page", "/admin/users"), audit=accounts.audit, ip="192.0.2.7")
    [event] = denied_events(accounts)
    assert (event.actor_name, event.target_type, event.target_id, event.source_ip) == (
        "victor",
        "page",
        "/admin/users",
        "192.0.2.7",
    )
    assert json.loads(event.details)["needs"] == "admin"


def test_scopes_are_checked_where_asked_and_metrics_stands_alone() -> None:
    token = Principal(user_id=1, username="a", role=Role.ADMIN, via="token", scopes=frozenset({"write"}))
    assert refusal(token, Role.ADMIN) is None  # a service's role check: the scope was checked at the door
    assert refusal(token, Need.api(Role.OPERATOR)) is None  # write covers write
    assert refusal(token, Need.api(Role.VIEWER)) is None  # ... and read
    assert "lacks the 'admin' scope" in (refusal(token, Need.api(Role.ADMIN)) or "")
    assert "metrics:read" in (refusal(token, METRICS) or "")
    assert refusal(CLI, METRICS) is None


def test_a_grant_stays_within_the_role_and_the_credential() -> None:
    viewer = Principal(user_id=1, username="v", role=Role.VIEWER, scopes=frozenset({"read", "metrics:read"}))
    assert "cannot grant write" in (refusal(viewer, Need(Role.VIEWER, grant=frozenset({"write"}))) or "")
    read_only = Principal(user_id=2, username="a", role=Role.ADMIN, via="token", scopes=frozenset({"read"}))
    assert "lacks admin" in (refusal(read_only, Need(Role.VIEWER, grant=frozenset({"admin"}))) or "")


def test_one_bearer_parser() -> None:
    assert bearer_token("Bearer nox_abc") == "nox_abc"
    assert bearer_token("bearer   nox_abc ") == "nox_abc"
    for header in (None, "", "Bearer", "Bearer ", "Basic nox_abc", "nox_abc"):
        assert bearer_token(header) is None, header


# -- the system principal ------------------------------------------------------------------------------


def test_a_caller_that_forgets_the_actor_fails_instead_of_skipping_the_check(services: Services) -> None:
    with pytest.raises(TypeError):
        services.users.create("nina", "a long enough password", "admin")  # type: ignore[call-arg,arg-type]
    with pytest.raises(TypeError):
        services.settings.update({"site_name": "x"})  # type: ignore[call-arg,arg-type]
    assert services.users.count() == 0


def test_system_actors_are_named_and_recorded_as_system(services: Services) -> None:
    assert CLI.is_system and SETUP.is_system and PANEL.is_system
    created = services.users.create(CLI, "ada", "a long enough password", "admin")
    with services.db.session() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "user.create")).one()
    assert (event.actor_id, event.actor_name, event.actor_role) == (None, "system", "system")
    # The system principal is no account: it is never "yourself".
    assert CLI.user_id != created.id
    services.users.create(PANEL, "bob", "a long enough password", "admin")
    services.users.set_disabled(CLI, "ada", True)
    assert services.users.get_by_username("ada").disabled


# -- races ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["demote", "disable", "delete"])
def test_two_admins_taking_each_other_away_at_once_leave_one_admin(services: Services, how: str) -> None:
    """Each round: two enabled admins act against each other at the same moment. One wins, the other
    is refused as the last admin; never zero admins (a real SQLite file, two threads)."""
    for round_ in range(6):
        names = (f"ada{round_}", f"bob{round_}")
        for name in names:
            services.users.create(PANEL, name, "a long enough password", "admin")
        ada, bob = (principal_of(services, name) for name in names)

        def against(actor: Principal, target: Principal) -> Callable[[], Any]:
            if how == "demote":
                return lambda: services.users.update(actor, target.user_id, role="operator")
            if how == "disable":
                return lambda: services.users.update(actor, target.user_id, disabled=True)
            return lambda: services.users.delete(actor, target.user_id)

        results = at_once(against(ada, bob), against(bob, ada))
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], Conflict) and "last enabled admin" in refused[0].message
        with services.db.session() as session:
            admins = session.exec(
                select(User.username).where(User.role == "admin", User.disabled == False)  # noqa: E712
            ).all()
        assert len(admins) == 1, admins
        # out of the way for the next round, so the next pair are the only enabled admins
        with services.db.session() as session:
            for row in session.exec(select(User).where(User.role == "admin")).all():
                row.role = "viewer"
                session.add(row)
            session.commit()


def test_token_creations_at_once_stop_at_the_cap(accounts: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "MAX_PERSONAL_TOKENS", 3)
    victor = accounts.users.get_by_username("victor")
    me = Principal(
        user_id=victor.id or 0,
        username="victor",
        role=Role.VIEWER,
        scopes=frozenset({"read", "metrics:read"}),
    )
    results = at_once(
        *[lambda n=n: accounts.auth.create_personal_token(me, f"t{n}", ["read"]) for n in range(8)]
    )
    made = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(made) == 3, results
    assert all(isinstance(r, Conflict) for r in refused), refused
    assert len([t for t in accounts.auth.list_tokens(me.user_id) if t.kind == "personal"]) == 3


# -- the lockout ---------------------------------------------------------------------------------------


def test_the_login_lockout_ends_after_login_lockout_seconds(accounts: Services) -> None:
    """Attempts are counted before the (slow) password check, so a burst is counted at once: past
    `max_failures` the next is refused without looking at the password. Once `lockout_seconds` have
    passed since the last counted attempt, the right password works again (a lower bound only)."""
    accounts.auth.login_policy = LoginPolicy(max_failures=2, lockout_seconds=2)
    attempt = lambda: accounts.auth.check_password("victor", "wrong password", ip="192.0.2.1")  # noqa: E731
    results = at_once(attempt, attempt, attempt)
    assert sorted(type(r).__name__ for r in results) == ["RateLimited", "Unauthenticated", "Unauthenticated"]
    locked = next(r for r in results if isinstance(r, RateLimited))
    assert 0 < locked.retry_after <= 2
    # Every attempt was counted before its thread ended: two seconds after that, the window is empty.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(deadline - time.monotonic())
    assert accounts.auth.check_password("victor", VIEWER_PASSWORD, ip="192.0.2.1").username == "victor"
