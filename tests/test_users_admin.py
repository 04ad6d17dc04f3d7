"""User administration: the service's guards, the REST routes, ending credentials, the audit trail."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from nox_ui.app import Services
from nox_ui.errors import Conflict, Forbidden, Invalid, NotFound
from nox_ui.models import ApiToken, AuditEvent, LoginSession, User
from nox_ui.passwords import check_password_policy, common_passwords, is_common_password
from nox_ui.roles import PANEL, Principal, Role
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer

COMMON = "qwerty123456"  # in the bundled list, and long enough to pass the length rule


def principal(services: Services, username: str) -> Principal:
    user = services.users.get_by_username(username)
    assert user.id is not None
    return Principal(user_id=user.id, username=user.username, role=Role(user.role))


def uid(services: Services, username: str) -> int:
    user_id = services.users.get_by_username(username).id
    assert user_id is not None
    return user_id


def audit_of(services: Services, action: str) -> list[AuditEvent]:
    return list(reversed(services.audit.query(limit=1000, action=action).events))


def snapshot(services: Services) -> list[tuple[object, ...]]:
    return [
        (u.username, u.role, u.disabled, u.email, u.display_name, u.password_hash)
        for u in services.users.list()
    ]


# -- password policy ---------------------------------------------------------------------------------


def test_common_password_list_is_bundled_and_checked_case_insensitively() -> None:
    listed = common_passwords()
    assert 9_000 <= len(listed) <= 10_000
    assert all(len(p) >= 8 and p == p.lower() for p in listed)
    assert is_common_password(COMMON) and is_common_password(COMMON.upper())
    assert not is_common_password("correct horse battery")
    with pytest.raises(Invalid, match="password is too common: choose another"):
        check_password_policy("QWERTY123456", "someone")
    with pytest.raises(Invalid, match="too short"):
        check_password_policy("short", "someone")
    with pytest.raises(Invalid, match="username"):
        check_password_policy("Someone.Long.Name", "someone.long.name")
    check_password_policy("a decent passphrase", "someone")


# -- service guards ----------------------------------------------------------------------------------


def test_last_enabled_admin_cannot_be_demoted_disabled_or_deleted(accounts: Services) -> None:
    admin_id = uid(accounts, "admin")
    before = snapshot(accounts)
    with pytest.raises(Conflict, match="last enabled admin"):
        accounts.users.update(PANEL, admin_id, role="operator")
    with pytest.raises(Conflict, match="last enabled admin"):
        accounts.users.update(PANEL, admin_id, disabled=True)
    with pytest.raises(Conflict, match="last enabled admin"):
        accounts.users.delete(PANEL, admin_id)
    with pytest.raises(Conflict, match="last enabled admin"):
        accounts.users.set_disabled(PANEL, "admin", True)
    assert snapshot(accounts) == before
    # With a second enabled admin, the first may go.
    accounts.users.update(PANEL, uid(accounts, "olga"), role="admin")
    accounts.users.update(PANEL, admin_id, role="viewer")
    assert accounts.users.get(admin_id).role == "viewer"


def test_a_disabled_admin_does_not_count(accounts: Services) -> None:
    accounts.users.create(PANEL, "ada", "second admin password", "admin")
    accounts.users.update(PANEL, uid(accounts, "ada"), disabled=True)
    with pytest.raises(Conflict):
        accounts.users.update(PANEL, uid(accounts, "admin"), role="operator")
    accounts.users.delete(PANEL, uid(accounts, "ada"))  # a disabled admin may go


def test_nobody_disables_or_deletes_themselves(accounts: Services) -> None:
    accounts.users.create(PANEL, "ada", "second admin password", "admin")
    ada = principal(accounts, "ada")
    with pytest.raises(Conflict, match="your own account"):
        accounts.users.update(ada, ada.user_id, disabled=True)
    with pytest.raises(Conflict, match="your own account"):
        accounts.users.delete(ada, ada.user_id)
    assert accounts.users.get(ada.user_id).disabled is False


def test_non_admins_are_refused_by_the_service(accounts: Services) -> None:
    olga = principal(accounts, "olga")
    victor_id = uid(accounts, "victor")
    with pytest.raises(Forbidden):
        accounts.users.update(olga, victor_id, role="operator")
    with pytest.raises(Forbidden):
        accounts.users.delete(olga, victor_id)
    assert accounts.users.get(victor_id).role == "viewer"


def test_invalid_values_change_nothing(accounts: Services) -> None:
    victor_id = uid(accounts, "victor")
    before = snapshot(accounts)
    for kwargs in (
        {"email": "not an email"},
        {"email": "a@b@c"},
        {"email": "x" * 250 + "@b.io"},
        {"role": "superuser", "email": "fine@example.org"},
        {"password": "short", "display_name": "Victor"},
        {"password": COMMON},
        {"password": "victor", "role": "operator"},
        {"display_name": "x" * 200},
    ):
        with pytest.raises(Invalid):
            accounts.users.update(PANEL, victor_id, **kwargs)  # type: ignore[arg-type]
    assert snapshot(accounts) == before
    with pytest.raises(NotFound):
        accounts.users.update(PANEL, 9999, role="viewer")


def test_update_changes_fields_and_audits_old_to_new(accounts: Services) -> None:
    admin = principal(accounts, "admin")
    victor_id = uid(accounts, "victor")
    accounts.users.update(
        admin, victor_id, role="operator", display_name=" Victor V ", email="v@example.org", ip="192.0.2.4"
    )
    victor = accounts.users.get(victor_id)
    assert (victor.role, victor.display_name, victor.email) == ("operator", "Victor V", "v@example.org")
    event = audit_of(accounts, "user.update")[-1]
    assert (event.actor_name, event.target_label, event.source_ip) == ("admin", "victor", "192.0.2.4")
    assert json.loads(event.details) == {
        "role": {"old": "viewer", "new": "operator"},
        "display_name": {"old": "", "new": "Victor V"},
        "email": {"old": "", "new": "v@example.org"},
    }
    accounts.users.update(admin, victor_id, disabled=True)
    assert audit_of(accounts, "user.disable")[-1].target_label == "victor"
    accounts.users.update(admin, victor_id, disabled=False)
    assert json.loads(audit_of(accounts, "user.update")[-1].details) == {
        "disabled": {"old": True, "new": False}
    }
    accounts.users.update(admin, victor_id, password="a fresh passphrase")
    password_event = audit_of(accounts, "user.password")[-1]
    assert "a fresh passphrase" not in password_event.details
    assert accounts.auth.check_password("victor", "a fresh passphrase").id == victor_id
    assert accounts.audit.verify().ok


@pytest.mark.parametrize("change", [{"role": "operator"}, {"disabled": True}])
def test_role_change_and_disable_end_sessions_and_tokens_at_once(
    accounts: Services, change: dict[str, object]
) -> None:
    victor = accounts.users.get_by_username("victor")
    assert victor.id is not None
    cookie = accounts.auth.start_session(victor.id)
    issued = accounts.auth.issue_token(victor, name="script")
    assert accounts.auth.resolve_session(cookie) is not None
    assert accounts.auth.resolve_token(issued.token) is not None  # now also in the token cache
    ended: list[set[int]] = []
    accounts.users.on_sessions_ended(ended.append)
    accounts.users.update(principal(accounts, "admin"), victor.id, **change)  # type: ignore[arg-type]
    assert accounts.auth.resolve_session(cookie) is None
    assert accounts.auth.cached_token(issued.token) is None
    assert accounts.auth.resolve_token(issued.token) is None
    assert ended == [{victor.id}]
    assert json.loads(audit_of(accounts, "auth.session.end")[-1].details)["api_keys_revoked"] == 1


def test_delete_removes_the_user_their_sessions_and_tokens(accounts: Services) -> None:
    victor = accounts.users.get_by_username("victor")
    assert victor.id is not None
    cookie = accounts.auth.start_session(victor.id)
    issued = accounts.auth.issue_token(victor)
    accounts.users.delete(principal(accounts, "admin"), victor.id)
    assert accounts.users.find("victor") is None
    assert accounts.auth.resolve_session(cookie) is None
    assert accounts.auth.resolve_token(issued.token) is None
    with accounts.db.session() as session:
        assert session.exec(select(LoginSession).where(LoginSession.user_id == victor.id)).all() == []
        assert session.exec(select(ApiToken).where(ApiToken.user_id == victor.id)).all() == []
    event = audit_of(accounts, "user.delete")[-1]
    assert (event.actor_name, event.target_label, event.target_id) == ("admin", "victor", str(victor.id))
    assert json.loads(event.details)["role"] == "viewer"
    with pytest.raises(NotFound):
        accounts.users.delete(PANEL, victor.id)
    assert accounts.audit.verify().ok


def test_end_sessions_and_session_counts(accounts: Services) -> None:
    victor_id = uid(accounts, "victor")
    accounts.auth.start_session(victor_id)
    accounts.auth.start_session(victor_id)
    assert accounts.users.active_session_counts() == {victor_id: 2}
    assert accounts.users.end_sessions(principal(accounts, "admin"), victor_id) == (2, 0)
    assert accounts.users.active_session_counts() == {}


# -- API ----------------------------------------------------------------------------------------------


@pytest.fixture
def admin_headers(api: TestClient) -> dict[str, str]:
    return bearer(api, "admin", ADMIN_PASSWORD)


def test_api_create_get_patch_delete(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    body = {
        "username": "nina",
        "password": "a long enough password",
        "role": "operator",
        "display_name": "Nina",
        "email": "nina@example.org",
    }
    created = api.post("/api/v1/users", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["username"], user["role"], user["email"], user["disabled"]) == (
        "nina",
        "operator",
        "nina@example.org",
        False,
    )
    assert all("password" not in key for key in user)
    url = f"/api/v1/users/{user['id']}"
    assert api.get(url, headers=admin_headers).json()["display_name"] == "Nina"
    patched = api.patch(url, json={"role": "viewer", "email": ""}, headers=admin_headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["role"], patched.json()["email"]) == ("viewer", "")
    assert api.delete(url, headers=admin_headers).status_code == 204
    assert api.get(url, headers=admin_headers).status_code == 404
    assert api.delete(url, headers=admin_headers).status_code == 404
    assert [e.target_label for e in audit_of(accounts, "user.create")][-1] == "nina"
    assert json.loads(audit_of(accounts, "user.update")[-1].details)["role"] == {
        "old": "operator",
        "new": "viewer",
    }
    assert audit_of(accounts, "user.delete")[-1].target_label == "nina"


def test_api_duplicate_username_is_409(api: TestClient, admin_headers: dict[str, str]) -> None:
    body = {"username": "OLGA", "password": "a long enough password", "role": "viewer"}
    response = api.post("/api/v1/users", json=body, headers=admin_headers)
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_api_invalid_fields_are_422_and_change_nothing(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    before = snapshot(accounts)
    good = {"username": "nina", "password": "a long enough password", "role": "viewer"}
    for bad in (
        {},
        {**good, "username": ""},
        {**good, "username": "has space"},
        {**good, "password": ""},
        {**good, "password": "short"},
        {**good, "password": COMMON},
        {**good, "password": "Nina"},
        {**good, "role": ""},
        {**good, "role": "root"},
        {**good, "email": "nope"},
        {**good, "email": "a b@example.org"},
        {**good, "username": 5},
        {**good, "extra": 1},
    ):
        response = api.post("/api/v1/users", json=bad, headers=admin_headers)
        assert response.status_code == 422, (bad, response.text)
        assert "detail" in response.json()
    victor_url = f"/api/v1/users/{uid(accounts, 'victor')}"
    for bad_patch in (
        {"role": "root"},
        {"role": ""},
        {"email": "not an email"},
        {"password": "short"},
        {"password": COMMON},
        {"disabled": "yes"},
        {"role": "operator", "email": "bad"},
        {"is_admin": True},
        {"username": "renamed"},
    ):
        response = api.patch(victor_url, json=bad_patch, headers=admin_headers)
        assert response.status_code == 422, (bad_patch, response.text)
    for path in ("/api/v1/users/abc", "/api/v1/users/0", f"/api/v1/users/{2**70}"):
        assert api.get(path, headers=admin_headers).status_code == 422
    assert api.get("/api/v1/users/9999", headers=admin_headers).status_code == 404
    assert api.patch("/api/v1/users/9999", json={"role": "viewer"}, headers=admin_headers).status_code == 404
    assert snapshot(accounts) == before


def test_api_guards_are_409(api: TestClient, accounts: Services, admin_headers: dict[str, str]) -> None:
    admin_url = f"/api/v1/users/{uid(accounts, 'admin')}"
    for method, body in (("patch", {"role": "operator"}), ("patch", {"disabled": True}), ("delete", None)):
        response = api.request(method.upper(), admin_url, json=body, headers=admin_headers)
        assert response.status_code == 409, (method, body, response.text)
    accounts.users.update(PANEL, uid(accounts, "olga"), role="admin")
    # Now not the last admin, but still oneself.
    assert api.patch(admin_url, json={"disabled": True}, headers=admin_headers).status_code == 409
    assert api.delete(admin_url, headers=admin_headers).status_code == 409
    assert accounts.users.get_by_username("admin").disabled is False


def test_api_role_change_and_disable_end_the_users_tokens(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    olga_headers = bearer(api, "olga", OPERATOR_PASSWORD)
    olga_id = uid(accounts, "olga")
    cookie = accounts.auth.start_session(olga_id)
    assert api.get("/api/v1/me", headers=olga_headers).status_code == 200
    assert (
        api.patch(f"/api/v1/users/{olga_id}", json={"role": "viewer"}, headers=admin_headers).status_code
        == 200
    )
    assert api.get("/api/v1/me", headers=olga_headers).status_code == 401
    assert accounts.auth.resolve_session(cookie) is None

    victor_headers = bearer(api, "victor", VIEWER_PASSWORD)
    victor_id = uid(accounts, "victor")
    assert api.get("/api/v1/me", headers=victor_headers).status_code == 200
    response = api.patch(f"/api/v1/users/{victor_id}", json={"disabled": True}, headers=admin_headers)
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert api.get("/api/v1/me", headers=victor_headers).status_code == 401


def test_viewer_and_operator_get_403_on_every_users_route(api: TestClient, accounts: Services) -> None:
    victor_id = uid(accounts, "victor")
    for username, password in (("victor", VIEWER_PASSWORD), ("olga", OPERATOR_PASSWORD)):
        headers = bearer(api, username, password)
        for method, path, body in (
            ("GET", "/api/v1/users", None),
            (
                "POST",
                "/api/v1/users",
                {"username": "x1", "password": "a long enough password", "role": "admin"},
            ),
            ("GET", f"/api/v1/users/{victor_id}", None),
            ("PATCH", f"/api/v1/users/{victor_id}", {"role": "admin"}),
            ("DELETE", f"/api/v1/users/{victor_id}", None),
        ):
            response = api.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (username, method, path)
    assert accounts.users.find("x1") is None
    assert accounts.users.get(victor_id).role == "viewer"
    with accounts.db.session() as session:
        assert session.exec(select(User).where(User.username == "victor")).one().role == "viewer"
    assert len(audit_of(accounts, "access.denied")) >= 10
