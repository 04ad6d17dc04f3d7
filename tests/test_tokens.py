"""Personal access tokens and own sessions: the API (`/api/v1/tokens`, `/api/v1/sessions`), the rules in
`AuthService` (scopes within the role and the request's own credential, expiry, shown once, hashed),
and what changing one's own password ends."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import func, select

from nox_ui.app import Services
from nox_ui.errors import Forbidden, Invalid, NotFound
from nox_ui.models import ApiToken, AuditEvent, utcnow
from nox_ui.roles import Principal
from nox_ui.services import auth as auth_module
from nox_ui.services.auth import PASSWORD_GRANT_NAME, hash_secret
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(api: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return api.post("/api/v1/tokens", json={"name": "script", "scopes": ["read"], **body}, headers=headers)


def token_count(services: Services) -> int:
    with services.db.session() as session:
        return session.exec(select(func.count()).select_from(ApiToken)).one()


def audit_of(services: Services, action: str) -> list[AuditEvent]:
    return list(reversed(services.audit.query(limit=1000, action=action).events))


def session_principal(services: Services, cookie: str) -> Principal:
    principal = services.auth.resolve_session(cookie)
    assert principal is not None
    return principal


def user_id(services: Services, username: str) -> int:
    found = services.users.get_by_username(username).id
    assert found is not None
    return found


# -- the API -----------------------------------------------------------------------------------------


def test_a_created_token_works_within_its_scopes_and_gets_403_beyond(api: TestClient) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    response = create(api, admin, name="read-only dashboards", expires_in_days=30)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token"].startswith("nox_")
    assert (body["name"], body["scopes"], body["kind"], body["status"]) == (
        "read-only dashboards",
        ["read"],
        "personal",
        "active",
    )
    assert body["revoked"] is False and body["last_used_at"] is None
    lifetime = body["expires_at"]
    assert lifetime is not None
    token = auth_header(body["token"])
    assert api.get("/api/v1/me", headers=token).json()["scopes"] == ["read"]
    assert api.get("/api/v1/tokens", headers=token).status_code == 200
    beyond = api.get("/api/v1/users", headers=token)
    assert beyond.status_code == 403
    assert beyond.json() == {"detail": "this token lacks the 'admin' scope"}


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(api: TestClient, accounts: Services) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    created = create(api, admin, name="backup").json()
    secret = created["token"]
    listing = api.get("/api/v1/tokens", headers=admin)
    assert listing.status_code == 200
    assert secret not in listing.text
    mine = next(t for t in listing.json() if t["id"] == created["id"])
    assert "token" not in mine and "token_hash" not in mine
    with accounts.db.session() as session:
        rows = session.execute(text("SELECT * FROM api_tokens")).all()
        stored = session.get(ApiToken, created["id"])
    assert stored is not None and stored.token_hash == hash_secret(secret)
    assert all(secret not in str(value) for row in rows for value in row)


def test_the_list_is_the_callers_newest_first_with_password_grants_labelled(
    api: TestClient, accounts: Services
) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)  # a password grant, listed too
    first = create(api, admin, name="first").json()["id"]
    second = create(api, admin, name="second").json()["id"]
    create(api, bearer(api, "victor", VIEWER_PASSWORD), name="victor's")
    listing = api.get("/api/v1/tokens", headers=admin).json()
    assert [t["name"] for t in listing] == ["second", "first", PASSWORD_GRANT_NAME]
    assert [t["kind"] for t in listing] == ["personal", "personal", "password grant"]
    assert {t["id"] for t in listing} >= {first, second}
    # revoked ones leave the list; an expired password grant too, an expired personal token stays marked
    assert api.delete(f"/api/v1/tokens/{first}", headers=admin).status_code == 204
    old_grant = accounts.auth.issue_token(accounts.users.get_by_username("admin"), name=PASSWORD_GRANT_NAME)
    with accounts.db.session() as session:
        for token_id in (second, old_grant.record.id):
            row = session.get(ApiToken, token_id)
            assert row is not None
            row.expires_at = utcnow() - timedelta(minutes=1)
        session.commit()
    listing = api.get("/api/v1/tokens", headers=admin).json()
    assert [(t["name"], t["status"]) for t in listing] == [
        ("second", "expired"),
        (PASSWORD_GRANT_NAME, "active"),
    ]


def test_revoking_ends_the_token_at_once_and_is_audited(api: TestClient, accounts: Services) -> None:
    olga = bearer(api, "olga", OPERATOR_PASSWORD)
    created = create(api, olga, name="deploy", scopes=["read", "write"]).json()
    token = auth_header(created["token"])
    assert api.get("/api/v1/me", headers=token).status_code == 200  # now in the token cache as well
    assert api.delete(f"/api/v1/tokens/{created['id']}", headers=olga).status_code == 204
    assert api.get("/api/v1/me", headers=token).status_code == 401
    assert api.delete(f"/api/v1/tokens/{created['id']}", headers=olga).status_code == 404  # already gone

    made = audit_of(accounts, "auth.token.create")[-1]
    assert (made.actor_name, made.target_id, made.target_label, made.source_ip) == (
        "olga",
        str(created["id"]),
        "deploy",
        "203.0.113.9",
    )
    assert json.loads(made.details) == {"kind": "personal", "scopes": ["read", "write"], "expires_at": None}
    assert created["token"] not in made.details
    revoked = audit_of(accounts, "auth.token.revoke")[-1]
    assert (revoked.actor_name, revoked.target_id, revoked.outcome) == ("olga", str(created["id"]), "success")


def test_someone_elses_token_is_not_found(api: TestClient) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    victor = bearer(api, "victor", VIEWER_PASSWORD)
    created = create(api, admin, name="admin's").json()
    for token_id in (created["id"], 999_999):
        response = api.delete(f"/api/v1/tokens/{token_id}", headers=victor)
        assert response.status_code == 404
        assert response.json() == {"detail": f"no token with id {token_id}"}
    assert all(t["id"] != created["id"] for t in api.get("/api/v1/tokens", headers=victor).json())
    assert api.get("/api/v1/me", headers=auth_header(created["token"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ""}, "token name is required"),
        ({"name": "   "}, "token name is required"),
        ({"name": "x" * 129}, "token name too long"),
        ({"name": "two\nlines"}, "one line"),
        ({"name": "Password Grant"}, "reserved"),
        ({"scopes": []}, "choose at least one scope"),
        ({"scopes": ["read", "root"]}, "unknown scope 'root'"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expiry must be in the future"),
        ({"expires_in_days": 400}, None),
        ({"expires_at": (utcnow() + timedelta(days=400)).isoformat()}, "at most 366 days"),
        ({"expires_in_days": 5, "expires_at": (utcnow() + timedelta(days=5)).isoformat()}, "not both"),
        ({"scope": ["read"]}, None),
    ],
)
def test_invalid_input_is_422_and_creates_nothing(
    api: TestClient, accounts: Services, body: dict[str, Any], message: str | None
) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    before = token_count(accounts)
    response = create(api, admin, **body)
    assert response.status_code == 422, response.text
    if message is not None:
        assert message in response.json()["detail"]
    assert token_count(accounts) == before


def test_a_name_of_128_characters_and_a_year_are_accepted(api: TestClient) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    assert create(api, admin, name="x" * 128, expires_in_days=366).status_code == 201
    assert (
        create(
            api, admin, name="naive", expires_at=(utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
        ).status_code
        == 201
    )


def test_nobody_grants_a_scope_above_their_role(api: TestClient, accounts: Services) -> None:
    victor = bearer(api, "victor", VIEWER_PASSWORD)
    olga = bearer(api, "olga", OPERATOR_PASSWORD)
    before = token_count(accounts)
    for headers, scopes in ((victor, ["read", "admin"]), (victor, ["write"]), (olga, ["admin"])):
        response = create(api, headers, scopes=scopes)
        assert response.status_code == 403, response.text
        assert "cannot grant" in response.json()["detail"]
    assert token_count(accounts) == before
    refused = audit_of(accounts, "access.denied")[-1]
    assert (refused.actor_name, refused.target_type, refused.outcome) == ("olga", "api_token", "denied")
    assert json.loads(refused.details)["attempted"] == "auth.token.create"
    assert create(api, victor, scopes=["read", "metrics:read"]).status_code == 201
    assert create(api, olga, scopes=["write"]).status_code == 201


def test_a_token_grants_only_scopes_it_holds(api: TestClient) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    read_only = auth_header(create(api, admin, name="reader", scopes=["read"]).json()["token"])
    for scopes in (["admin"], ["write"], ["metrics:read"]):
        response = create(api, read_only, name="escalated", scopes=scopes)
        assert response.status_code == 403, scopes
        assert "lacks" in response.json()["detail"]
    assert create(api, read_only, name="another reader", scopes=["read"]).status_code == 201
    admin_token = auth_header(create(api, admin, name="admin", scopes=["admin"]).json()["token"])
    assert (
        create(api, admin_token, name="writer", scopes=["write"]).status_code == 201
    )  # admin includes write
    scraper = auth_header(create(api, admin, name="prometheus", scopes=["metrics:read"]).json()["token"])
    assert api.get("/api/v1/tokens", headers=scraper).status_code == 403  # a scraper token does nothing else


def test_an_expired_token_is_refused(api: TestClient, accounts: Services) -> None:
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    created = create(api, admin, name="short", expires_in_days=1).json()
    with accounts.db.session() as session:
        row = session.get(ApiToken, created["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    response = api.get("/api/v1/me", headers=auth_header(created["token"]))
    assert response.status_code == 401


def test_requests_without_a_token_are_401(api: TestClient) -> None:
    assert api.get("/api/v1/tokens").status_code == 401
    assert api.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"]}).status_code == 401
    assert api.delete("/api/v1/tokens/1").status_code == 401
    assert api.get("/api/v1/sessions").status_code == 401


def test_the_number_of_personal_tokens_is_capped(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "MAX_PERSONAL_TOKENS", 2)
    admin = bearer(api, "admin", ADMIN_PASSWORD)
    assert create(api, admin, name="one").status_code == 201
    assert create(api, admin, name="two").status_code == 201
    response = create(api, admin, name="three")
    assert response.status_code == 409
    assert "revoke one" in response.json()["detail"]


# -- own sessions ------------------------------------------------------------------------------------


def test_sessions_api_lists_and_ends_only_ones_own(api: TestClient, accounts: Services) -> None:
    victor_id, admin_id = user_id(accounts, "victor"), user_id(accounts, "admin")
    cookie = accounts.auth.start_session(victor_id, ip="192.0.2.7", user_agent="Mozilla/5.0 Firefox/140.0")
    admin_cookie = accounts.auth.start_session(admin_id)
    victor = bearer(api, "victor", VIEWER_PASSWORD)
    listing = api.get("/api/v1/sessions", headers=victor).json()
    assert [(s["ip"], s["user_agent"]) for s in listing] == [("192.0.2.7", "Mozilla/5.0 Firefox/140.0")]
    assert "token_hash" not in listing[0]
    admin_session = session_principal(accounts, admin_cookie).credential_id
    assert api.delete(f"/api/v1/sessions/{admin_session}", headers=victor).status_code == 404
    assert accounts.auth.resolve_session(admin_cookie) is not None
    assert api.delete(f"/api/v1/sessions/{listing[0]['id']}", headers=victor).status_code == 204
    assert accounts.auth.resolve_session(cookie) is None
    ended = audit_of(accounts, "auth.session.end")[-1]
    assert (ended.actor_name, ended.target_type, ended.target_id) == (
        "victor",
        "session",
        str(listing[0]["id"]),
    )
    assert json.loads(ended.details) == {"reason": "ended by user"}


def test_ending_a_session_is_refused_for_someone_elses(accounts: Services) -> None:
    victor = session_principal(accounts, accounts.auth.start_session(user_id(accounts, "victor")))
    olga_cookie = accounts.auth.start_session(user_id(accounts, "olga"))
    olga_session = session_principal(accounts, olga_cookie).credential_id or 0
    with pytest.raises(NotFound):
        accounts.auth.end_own_session(victor, olga_session)
    assert accounts.auth.resolve_session(olga_cookie) is not None


def test_end_other_sessions_keeps_the_current_one(accounts: Services) -> None:
    victor_id = user_id(accounts, "victor")
    here, there, elsewhere = (accounts.auth.start_session(victor_id) for _ in range(3))
    olga = accounts.auth.start_session(user_id(accounts, "olga"))
    me = session_principal(accounts, here)
    notified: list[set[int]] = []
    accounts.users.on_sessions_ended(notified.append)
    assert accounts.auth.end_other_sessions(me, me.credential_id) == 2
    assert accounts.auth.resolve_session(here) is not None
    assert accounts.auth.resolve_session(there) is None and accounts.auth.resolve_session(elsewhere) is None
    assert accounts.auth.resolve_session(olga) is not None
    assert notified == [{victor_id}]
    assert json.loads(audit_of(accounts, "auth.session.end")[-1].details) == {
        "reason": "ended by user",
        "sessions": 2,
    }
    assert accounts.auth.end_other_sessions(me, me.credential_id) == 0


# -- the service's rules -----------------------------------------------------------------------------


def test_service_validation_errors_are_typed(accounts: Services) -> None:
    victor = session_principal(accounts, accounts.auth.start_session(user_id(accounts, "victor")))
    with pytest.raises(Invalid, match="unknown scope"):
        accounts.auth.create_personal_token(victor, "x", ["everything"])
    with pytest.raises(Forbidden, match=r"your role \(viewer\) cannot grant admin"):
        accounts.auth.create_personal_token(victor, "x", ["admin"])
    with pytest.raises(Invalid, match="in the future"):
        accounts.auth.create_personal_token(victor, "x", ["read"], expires_at=utcnow())
    issued = accounts.auth.create_personal_token(victor, "  padded  ", ["read"])
    assert issued.record.name == "padded" and issued.record.expires_at is None


# -- changing one's own password ---------------------------------------------------------------------


def test_own_password_change_ends_the_other_sessions_and_keeps_this_one(accounts: Services) -> None:
    victor_id = user_id(accounts, "victor")
    here, there = accounts.auth.start_session(victor_id), accounts.auth.start_session(victor_id)
    me = session_principal(accounts, here)
    personal = accounts.auth.create_personal_token(me, "cron", ["read"])
    grant = accounts.auth.issue_token(accounts.users.get(victor_id), name=PASSWORD_GRANT_NAME)
    accounts.users.set_password(me, "victor", "my next passphrase", keep_session_id=me.credential_id)
    assert accounts.auth.resolve_session(here) is not None
    assert accounts.auth.resolve_session(there) is None
    assert accounts.auth.resolve_token(personal.token) is not None  # personal tokens stay, as on GitHub
    assert accounts.auth.resolve_token(grant.token) is None  # a sign-in from a script ends like a session
    ended = json.loads(audit_of(accounts, "auth.session.end")[-1].details)
    assert ended == {"reason": "password changed", "sessions": 1, "api_keys_revoked": 1}
    assert json.loads(audit_of(accounts, "user.password")[-1].details) == {"own": True}


def test_an_admin_reset_ends_every_session_and_token(accounts: Services) -> None:
    victor_id = user_id(accounts, "victor")
    cookie = accounts.auth.start_session(victor_id)
    me = session_principal(accounts, cookie)
    personal = accounts.auth.create_personal_token(me, "cron", ["read"])
    admin = session_principal(accounts, accounts.auth.start_session(user_id(accounts, "admin")))
    # a kept session id means nothing when the password is someone else's
    accounts.users.set_password(admin, "victor", "reset by the admin", keep_session_id=me.credential_id)
    assert accounts.auth.resolve_session(cookie) is None
    assert accounts.auth.resolve_token(personal.token) is None
