"""The REST API over HTTP: token flow, roles, and JSON errors that are never a 500 for bad input."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from nox_ui.app import Services
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer


def test_token_flow_gives_a_bearer_token_that_opens_me(api: TestClient) -> None:
    response = api.post("/api/v1/auth/token", json={"username": "ADMIN", "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "admin"
    assert me.json()["role"] == "admin"


def test_wrong_password_unknown_user_and_disabled_user_get_the_same_401(
    api: TestClient, accounts: Services
) -> None:
    accounts.users.set_disabled(PANEL, "olga", True)
    answers = [
        api.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong password"}),
        api.post("/api/v1/auth/token", json={"username": "ghost", "password": "wrong password"}),
        api.post("/api/v1/auth/token", json={"username": "olga", "password": "operator password 1"}),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert {a.json()["detail"] for a in answers} == {"Invalid username or password."}


def test_missing_or_garbage_token_is_401_with_json(api: TestClient) -> None:
    missing = api.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing bearer token"}
    assert missing.headers["www-authenticate"] == "Bearer"
    for header in ("Bearer nox_garbage", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000):
        response = api.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert "detail" in response.json()


def test_expired_and_revoked_tokens_are_refused(api: TestClient, accounts: Services) -> None:
    admin = accounts.users.get_by_username("admin")
    expired = accounts.auth.issue_token(admin, ttl=timedelta(seconds=-1))
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {expired.token}"}).status_code == 401
    live = accounts.auth.issue_token(admin)
    headers = {"Authorization": f"Bearer {live.token}"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    assert live.record.id is not None
    accounts.auth.revoke_token(PANEL, live.record.id)
    assert api.get("/api/v1/me", headers=headers).status_code == 401


def test_tokens_are_stored_hashed(api: TestClient, accounts: Services) -> None:
    from sqlmodel import select

    from nox_ui.models import ApiToken

    token = api.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    with accounts.db.session() as session:
        stored = [row.token_hash for row in session.exec(select(ApiToken)).all()]
    assert token["access_token"] not in stored
    assert len(stored) == 1 and len(stored[0]) == 64


def test_viewer_gets_403_on_admin_routes(api: TestClient) -> None:
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    response = api.get("/api/v1/users", headers=headers)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_admin_lists_users(api: TestClient) -> None:
    response = api.get("/api/v1/users", headers=bearer(api, "admin", ADMIN_PASSWORD))
    assert response.status_code == 200
    users = response.json()
    assert {u["username"] for u in users} == {"admin", "olga", "victor"}
    assert all("password" not in key for u in users for key in u)


def test_disabling_a_user_ends_their_tokens(api: TestClient, accounts: Services) -> None:
    headers = bearer(api, "victor", VIEWER_PASSWORD)
    accounts.users.set_disabled(PANEL, "victor", True)
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    accounts.users.set_disabled(PANEL, "victor", False)
    assert api.get("/api/v1/me", headers=headers).status_code == 401  # revoked, not just paused


def test_bad_bodies_are_422_not_500(api: TestClient) -> None:
    for body in ({}, {"username": "admin"}, {"username": 5, "password": []}, None, "not json"):
        response = (
            api.post("/api/v1/auth/token", json=body)
            if body != "not json"
            else api.post(
                "/api/v1/auth/token", content=b"{nope", headers={"content-type": "application/json"}
            )
        )
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], list)


def test_unknown_route_is_json_404(api: TestClient) -> None:
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_repeated_failures_are_throttled_with_retry_after(api: TestClient, accounts: Services) -> None:
    limit = accounts.auth.login_policy.max_failures
    for _ in range(limit):
        assert (
            api.post("/api/v1/auth/token", json={"username": "admin", "password": "guess"}).status_code == 401
        )
    throttled = api.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in throttled.json()["detail"]


def test_openapi_lists_the_routes(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    assert {"/auth/token", "/me", "/users"} <= set(spec["paths"])
    assert api.get("/api/v1/docs").status_code == 200


def test_token_scopes_limit_what_a_token_opens(api: TestClient, accounts: Services) -> None:
    admin = accounts.users.get_by_username("admin")

    def headers(*scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {accounts.auth.issue_token(admin, scopes=frozenset(scopes)).token}"}

    scraper = headers("metrics:read")
    assert api.get("/api/v1/users", headers=scraper).status_code == 403
    assert "lacks the 'admin' scope" in api.get("/api/v1/users", headers=scraper).json()["detail"]
    assert api.get("/api/v1/metrics/current", headers=scraper).status_code == 403
    reader = headers("read")
    assert api.get("/api/v1/metrics/current", headers=reader).status_code == 200
    assert api.get("/api/v1/users", headers=reader).status_code == 403
    assert api.get("/api/v1/users", headers=headers("admin")).status_code == 200
    assert (
        api.get("/api/v1/metrics/current", headers=headers("admin")).status_code == 200
    )  # admin includes read
