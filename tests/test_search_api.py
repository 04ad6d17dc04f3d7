"""`GET /api/v1/search` (viewer), `GET /api/v1/search/status` and `POST /api/v1/search/reindex` (admin):
the API exactly as served, on the real services with the search writer running and a real index."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nox_ui.api import API_PREFIX, create_api
from nox_ui.app import Services
from nox_ui.roles import PANEL, Role
from tests.conftest import ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD, bearer
from tests.test_search import FINDABLE, HOSTILE, WAIT


@pytest.fixture
def client(accounts: Services) -> Iterator[TestClient]:
    accounts.search.start(accounts.supervisor)
    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))
    with TestClient(outer, client=("203.0.113.9", 5000)) as test_client:
        yield test_client
    asyncio.run(accounts.search.stop(accounts.supervisor))


def poll(
    client: TestClient, headers: dict[str, str], params: dict[str, Any], ok: Any, timeout: float = WAIT
) -> Any:
    """GET /search until `ok(body)`; the last body otherwise, for the assertion's message."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/v1/search", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if ok(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_search_needs_a_token(client: TestClient) -> None:
    response = client.get("/api/v1/search", params={"q": "admin"})
    assert response.status_code == 401
    assert response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"
    assert (
        client.get("/api/v1/search", params={"q": "x"}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )


def test_each_role_gets_what_it_may_see(client: TestClient, accounts: Services) -> None:
    admin = bearer(client, "admin", ADMIN_PASSWORD)
    olga = bearer(client, "olga", OPERATOR_PASSWORD)
    victor = bearer(client, "victor", VIEWER_PASSWORD)
    accounts.notifiers.create(PANEL, "victor's pager", "webhook", {"url": "https://hooks.example.org/x"})
    body = poll(client, admin, {"q": "victor"}, lambda b: b["state"] == "ready" and "notifier" in b["counts"])
    assert {"user", "audit", "notifier"} <= set(body["counts"]), body
    user = next(h for h in body["hits"] if h["type"] == "user")
    assert user["url"].startswith("/admin/users?user=") and user["title"] == "victor"
    assert "<mark>victor</mark>" in user["snippet"]
    operator = client.get("/api/v1/search", params={"q": "victor"}, headers=olga).json()
    assert "notifier" in operator["counts"] and not {"user", "audit"} & set(operator["counts"])
    viewer = client.get("/api/v1/search", params={"q": "victor"}, headers=victor).json()
    assert not {"user", "audit", "notifier"} & set(viewer["counts"])
    assert not {"user", "audit", "notifier"} & {h["type"] for h in viewer["hits"]}
    assert viewer["total"] == sum(viewer["counts"].values())
    refused = client.get("/api/v1/search", params={"q": "victor", "type": "user"}, headers=victor)
    assert refused.status_code == 422 and "unknown type" in refused.json()["detail"]


def test_a_created_user_is_findable_through_the_api(client: TestClient, accounts: Services) -> None:
    admin = bearer(client, "admin", ADMIN_PASSWORD)
    poll(client, admin, {"q": "admin"}, lambda b: b["state"] == "ready")
    created = client.post(
        "/api/v1/users",
        json={"username": "quentin", "password": "a long enough password", "role": "viewer"},
        headers=admin,
    )
    assert created.status_code in {200, 201}, created.text
    body = poll(
        client,
        admin,
        {"q": "quentin", "type": "user"},
        lambda b: [h["title"] for h in b["hits"]] == ["quentin"],
        FINDABLE,
    )
    assert [h["title"] for h in body["hits"]] == ["quentin"]
    assert body["type"] == "user" and body["counts"]["user"] == 1 and body["pages"] == 1


def test_bad_parameters_are_422_with_a_reason(client: TestClient) -> None:
    admin = bearer(client, "admin", ADMIN_PASSWORD)
    for params in (
        {"q": "x", "page": 0},
        {"q": "x", "page": 51},
        {"q": "x", "page": "two"},
        {"q": "x", "per_page": 0},
        {"q": "x", "per_page": 101},
        {"q": "x", "type": "nonsense"},
        {"q": "x" * 201},
        {"q": "*"},
        {"q": "type:nonsense"},
    ):
        response = client.get("/api/v1/search", params=params, headers=admin)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"], params


def test_hostile_strings_are_200_or_422_never_500(client: TestClient) -> None:
    admin = bearer(client, "admin", ADMIN_PASSWORD)
    victor = bearer(client, "victor", VIEWER_PASSWORD)
    for text in HOSTILE:
        for headers in (admin, victor):
            response = client.get("/api/v1/search", params={"q": text}, headers=headers)
            assert response.status_code in {200, 422}, (text, response.text)
            body = response.json()
            if response.status_code == 422:
                assert isinstance(body["detail"], str | list) and body["detail"], text
            else:
                assert body["state"] in {"ready", "rebuilding", "failed"}, text


def test_status_and_reindex_are_for_admins_and_a_reindex_is_audited(
    client: TestClient, accounts: Services
) -> None:
    admin = bearer(client, "admin", ADMIN_PASSWORD)
    victor = bearer(client, "victor", VIEWER_PASSWORD)
    olga = bearer(client, "olga", OPERATOR_PASSWORD)
    for headers in (victor, olga):
        assert client.get("/api/v1/search/status", headers=headers).status_code == 403
        assert client.post("/api/v1/search/reindex", headers=headers).status_code == 403
    poll(client, admin, {"q": "admin"}, lambda b: b["state"] == "ready")
    status = client.get("/api/v1/search/status", headers=admin).json()
    assert status["state"] == "ready" and status["documents"] > 0 and status["size_bytes"] > 0
    first = client.post("/api/v1/search/reindex", headers=admin)
    assert first.status_code == 202, first.text
    assert first.json()["state"] == "rebuilding"
    again = client.post("/api/v1/search/reindex", headers=admin)
    assert again.status_code == 409 and "already" in again.json()["detail"]
    # meanwhile searches still answer, from the build that is being replaced
    during = client.get("/api/v1/search", params={"q": "victor"}, headers=admin).json()
    assert during["state"] in {"rebuilding", "ready"}
    done = poll(client, admin, {"q": "victor"}, lambda b: b["state"] == "ready" and b["counts"].get("user"))
    assert done["counts"]["user"] == 1
    events = accounts.audit.query(requester=PANEL, action="search.reindex").events
    assert [e.actor_name for e in events] == ["admin"] and events[0].outcome == "success"
    assert Role.ADMIN.value == events[0].actor_role
