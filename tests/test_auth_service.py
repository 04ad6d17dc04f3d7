"""Sign-in rules at the service level: sessions, lifetimes, throttling, and what ends them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden, Invalid, RateLimited, Unauthenticated
from nox_ui.models import LoginSession, User
from nox_ui.roles import PANEL, Role, authorize
from nox_ui.services.auth import LOGIN_FAILED, hash_secret
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD


def _sign_in(services: Services, username: str, password: str) -> str:
    user = services.auth.check_password(username, password, ip="192.0.2.1")
    assert user.id is not None
    return services.auth.start_session(user.id, ip="192.0.2.1")


def test_password_is_stored_as_argon2id(accounts: Services) -> None:
    stored = accounts.users.get_by_username("admin").password_hash
    assert stored.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in stored


def test_usernames_are_case_insensitively_unique(accounts: Services) -> None:
    with pytest.raises(Conflict, match="already exists"):
        accounts.users.create(PANEL, "Admin", "another long password", "viewer")
    assert accounts.auth.check_password("ADMIN", ADMIN_PASSWORD).username == "admin"


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("", "a long enough password", "viewer", "invalid username"),
        ("bad name", "a long enough password", "viewer", "invalid username"),
        ("newbie", "short", "viewer", "too short"),
        ("newbie", "x" * 257, "viewer", "too long"),
        ("newbie-account", "newbie-account", "viewer", "must not be the username"),
        ("newbie", "a long enough password", "superuser", "unknown role"),
    ],
)
def test_invalid_accounts_are_refused_and_nothing_is_stored(
    services: Services, username: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        services.users.create(PANEL, username, password, role)
    assert services.users.count() == 0


def test_every_refusal_has_the_same_message(accounts: Services) -> None:
    accounts.users.set_disabled(PANEL, "victor", True)
    messages = set()
    for username, password in (
        ("admin", "wrong"),
        ("nobody", "wrong"),
        ("victor", VIEWER_PASSWORD),
        ("", ""),
    ):
        with pytest.raises(Unauthenticated) as caught:
            accounts.auth.check_password(username, password)
        messages.add(caught.value.message)
    assert messages == {LOGIN_FAILED}


def test_a_new_session_identifier_at_every_sign_in(accounts: Services) -> None:
    first = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    second = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    assert first != second
    assert accounts.auth.resolve_session(first) is not None
    assert accounts.auth.resolve_session(second) is not None
    with accounts.db.session() as session:
        hashes = {s.token_hash for s in session.exec(select(LoginSession)).all()}
    assert hashes == {hash_secret(first), hash_secret(second)}  # only hashes are stored


def test_sign_in_records_last_login(accounts: Services) -> None:
    assert accounts.users.get_by_username("admin").last_login_at is None
    _sign_in(accounts, "admin", ADMIN_PASSWORD)
    assert accounts.users.get_by_username("admin").last_login_at is not None


def test_sign_out_ends_only_that_session(accounts: Services) -> None:
    one = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    two = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    accounts.auth.end_session(one)
    assert accounts.auth.resolve_session(one) is None
    assert accounts.auth.resolve_session(two) is not None


def test_disable_and_password_change_end_every_session(accounts: Services) -> None:
    ended: list[set[int]] = []
    accounts.users.on_sessions_ended(ended.append)
    viewer = _sign_in(accounts, "victor", VIEWER_PASSWORD)
    admin = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    accounts.users.set_disabled(PANEL, "victor", True)
    assert accounts.auth.resolve_session(viewer) is None
    assert accounts.auth.resolve_session(admin) is not None
    accounts.users.set_password(PANEL, "admin", "the next admin password")
    assert accounts.auth.resolve_session(admin) is None
    victor_id = accounts.users.get_by_username("victor").id
    admin_id = accounts.users.get_by_username("admin").id
    assert ended == [{victor_id}, {admin_id}]


def test_idle_and_absolute_lifetimes(accounts: Services) -> None:
    token = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    policy = accounts.auth.session_policy

    def age(last_seen: timedelta, created: timedelta) -> None:
        with accounts.db.session() as session:
            login = session.exec(
                select(LoginSession).where(LoginSession.token_hash == hash_secret(token))
            ).one()
            login.last_seen_at = login.last_seen_at - last_seen
            login.created_at = login.created_at - created
            session.commit()

    age(policy.idle - timedelta(minutes=5), timedelta(0))
    assert accounts.auth.resolve_session(token) is not None  # still inside the idle window; touches last_seen
    age(policy.idle + timedelta(minutes=1), timedelta(0))
    assert accounts.auth.resolve_session(token) is None

    token = _sign_in(accounts, "admin", ADMIN_PASSWORD)
    age(timedelta(0), policy.absolute + timedelta(minutes=1))
    assert accounts.auth.resolve_session(token) is None


def test_login_throttle_per_account_and_address(accounts: Services) -> None:
    limit = accounts.auth.login_policy.max_failures
    for _ in range(limit):
        with pytest.raises(Unauthenticated):
            accounts.auth.check_password("admin", "guess", ip="198.51.100.7")
    with pytest.raises(RateLimited) as caught:
        accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="198.51.100.7")
    assert caught.value.retry_after > 0
    # the real admin elsewhere is not locked out by the guesser, nor is another account from that address
    assert accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="203.0.113.50").username == "admin"
    assert accounts.auth.check_password("victor", VIEWER_PASSWORD, ip="198.51.100.7").username == "victor"


def test_one_address_guessing_many_accounts_is_throttled(accounts: Services) -> None:
    limit = accounts.auth.login_policy.max_failures * 5
    for attempt in range(limit):
        with pytest.raises(Unauthenticated):
            accounts.auth.check_password(f"user{attempt}", "guess", ip="198.51.100.99")
    with pytest.raises(RateLimited):
        accounts.auth.check_password("admin", ADMIN_PASSWORD, ip="198.51.100.99")


def test_sign_in_ticket_is_single_use(accounts: Services) -> None:
    user = accounts.auth.check_password("admin", ADMIN_PASSWORD)
    ticket = accounts.auth.issue_ticket(user, "browser-a")
    assert accounts.auth.resolve_session(accounts.auth.redeem_ticket(ticket, "browser-a")) is not None
    with pytest.raises(Unauthenticated):
        accounts.auth.redeem_ticket(ticket, "browser-a")
    with pytest.raises(Unauthenticated):
        accounts.auth.redeem_ticket("made-up", "browser-a")


def test_a_sign_in_ticket_works_only_in_the_browser_that_signed_in(accounts: Services) -> None:
    """Login CSRF: a ticket sent to someone else's browser signs nobody in, and is spent."""
    user = accounts.auth.check_password("admin", ADMIN_PASSWORD)
    ticket = accounts.auth.issue_ticket(user, "attacker's browser")
    with pytest.raises(Unauthenticated, match="another browser"):
        accounts.auth.redeem_ticket(ticket, "victim's browser")
    with pytest.raises(Unauthenticated):
        accounts.auth.redeem_ticket(ticket, "attacker's browser")
    with pytest.raises(Unauthenticated):
        accounts.auth.issue_ticket(user, "")


def test_role_ladder() -> None:
    from nox_ui.roles import Principal

    viewer = Principal(user_id=1, username="v", role=Role.VIEWER)
    operator = Principal(user_id=2, username="o", role=Role.OPERATOR)
    assert authorize(operator, Role.VIEWER) is operator
    with pytest.raises(Forbidden, match="needs the operator role"):
        authorize(viewer, Role.OPERATOR)
    with pytest.raises(Forbidden):
        authorize(operator, Role.ADMIN)
    with pytest.raises(Forbidden):
        authorize(None, Role.VIEWER)


def test_only_admins_create_users_through_a_principal(accounts: Services) -> None:
    victor = accounts.auth.resolve_session(_sign_in(accounts, "victor", VIEWER_PASSWORD))
    assert victor is not None
    with pytest.raises(Forbidden):
        accounts.users.create(victor, "sneaky", "a long enough password", "admin")
    with accounts.db.session() as session:
        assert session.exec(select(User).where(User.username_key == "sneaky")).first() is None


def test_setup_token_is_one_time(services: Services) -> None:
    token = services.setup.token()
    assert token
    with pytest.raises(Forbidden):
        services.setup.create_admin("wrong", "rosa", "first admin password")
    services.setup.create_admin(token, "rosa", "first admin password")
    assert services.setup.token() is None
    from nox_ui.errors import NotFound

    with pytest.raises(NotFound):
        services.setup.create_admin(token, "second", "first admin password")
    assert services.users.count() == 1
