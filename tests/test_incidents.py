"""Unexpected errors met by a person: a page, an API route, a button. Each answer carries an incident id,
the same id is in the one log line that has the traceback, and nobody but an admin reads the exception
(its type and message; the traceback stays in the log). Expected failures keep their own messages.

The faults are real exceptions raised inside the services the pages and routes call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from loguru import logger
from nicegui import ui
from nicegui.testing import User

from nox_ui.api import API_PREFIX, create_api
from nox_ui.app import Services
from nox_ui.errors import NotFound
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, bearer, sign_in
from tests.test_recovery import until

SECRET_TEXT = "cannot open /var/lib/nox/s3cret-path.db"
INCIDENT = re.compile(r"incident ([0-9a-f]{10})")


class Leak(RuntimeError):
    """An unexpected failure whose message must not reach a non-admin."""


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)), level="ERROR", format="{message}\n{exception}"
    )
    yield lines
    logger.remove(sink)


def logged_incident(lines: list[str], incident: str) -> str:
    """The one log entry of `incident`: it must hold the traceback and the exception."""
    entries = [line for line in lines if f"incident {incident}:" in line]
    assert len(entries) == 1, entries
    assert "Traceback" in entries[0] and SECRET_TEXT in entries[0]
    return entries[0]


def broken(*_args: Any, **_kwargs: Any) -> Any:
    raise Leak(SECRET_TEXT)


# -- the API ------------------------------------------------------------------------------------------


def test_an_api_route_that_raises_answers_json_500_with_an_incident_id_and_nothing_else(
    accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))
    with TestClient(outer, client=("203.0.113.9", 5000), raise_server_exceptions=False) as client:
        headers = bearer(client, "victor", VIEWER_PASSWORD)
        monkeypatch.setattr(accounts.metrics, "names", broken)
        response = client.get("/api/v1/metrics/names", headers=headers)
        assert response.status_code == 500
        body = response.json()
        assert set(body) == {"detail", "incident"}
        assert body["detail"] == f"internal error; the server logged it (incident {body['incident']})"
        assert SECRET_TEXT not in response.text and "Leak" not in response.text
        entry = logged_incident(log_lines, body["incident"])
        assert "API GET /api/v1/metrics/names" in entry

        # An expected failure keeps its own status and message, and is no incident.
        monkeypatch.setattr(
            accounts.metrics, "names", lambda: (_ for _ in ()).throw(NotFound("no such metric"))
        )
        expected = client.get("/api/v1/metrics/names", headers=headers)
        assert expected.status_code == 404 and expected.json() == {"detail": "no such metric"}


# -- pages ---------------------------------------------------------------------------------------------


async def test_a_page_that_raises_shows_a_viewer_the_incident_id_and_no_exception_text(
    app_user: User, accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)
    monkeypatch.setattr(accounts.metrics, "names", broken)  # what /history reads first
    response = await app_user.http_client.get("/history")
    assert response.status_code == 500
    assert "Something went wrong on this page" in response.text
    found = re.search(r'"([0-9a-f]{10})"', response.text)
    assert found is not None, "no incident id on the page"
    incident = found.group(1)
    logged_incident(log_lines, incident)
    assert (
        SECRET_TEXT not in response.text and "Leak" not in response.text and "Traceback" not in response.text
    )


async def test_an_admin_reads_the_exception_on_the_error_page_but_not_the_traceback(
    app_user: User, accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    monkeypatch.setattr(accounts.audit, "checkpoints", broken)  # what /admin/audit reads first
    response = await app_user.http_client.get("/admin/audit")
    assert response.status_code == 500
    assert f"Leak: {SECRET_TEXT}" in response.text
    assert "Traceback" not in response.text and "File " not in response.text
    assert len([line for line in log_lines if "incident " in line]) == 1


async def test_a_page_raising_an_expected_error_shows_its_message_without_an_incident(
    app_user: User, accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD)

    def gone() -> Any:
        raise NotFound("that metric is no longer collected")

    monkeypatch.setattr(accounts.metrics, "names", gone)
    response = await app_user.http_client.get("/history")
    assert "that metric is no longer collected" in response.text
    assert not [line for line in log_lines if "incident " in line]


# -- actions -------------------------------------------------------------------------------------------


async def test_a_button_whose_action_raises_shows_a_notification_with_the_incident_id(
    app_user: User, accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/history")
    await app_user.should_see(marker="history-status")
    monkeypatch.setattr(accounts.metrics, "query", broken)
    app_user.find(marker="range-1 h").click()
    await until(lambda: any(INCIDENT.search(message) for message in app_user.notify.messages))
    [message] = [m for m in app_user.notify.messages if INCIDENT.search(m)]
    match = INCIDENT.search(message)
    assert match is not None
    assert SECRET_TEXT not in message and "Leak" not in message
    logged_incident(log_lines, match.group(1))


async def test_a_failed_action_offers_a_retry_that_runs_it_again(
    app_user: User, accounts: Services, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    victor_id = accounts.users.get_by_username("victor").id or 0
    other = accounts.auth.start_session(victor_id)
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/profile")
    await app_user.should_see(marker="sessions-table")
    real = accounts.auth.end_other_sessions
    calls: list[int] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Leak(SECRET_TEXT)
        return real(*args, **kwargs)

    monkeypatch.setattr(accounts.auth, "end_other_sessions", fails_once)
    app_user.find(marker="end-other-sessions").click()
    app_user.find(marker="confirm-action").click()
    await app_user.should_see(marker="action-failed", retries=300)
    [notice] = app_user.find(marker="action-failed").elements
    assert isinstance(notice, ui.notification)
    match = INCIDENT.search(notice.message)
    assert match is not None and SECRET_TEXT not in notice.message
    assert [action["label"] for action in notice.props["options"]["actions"]] == ["Retry"]
    logged_incident(log_lines, match.group(1))
    assert accounts.auth.resolve_session(other) is not None  # nothing happened yet

    app_user.find(marker="action-failed").trigger("retry")  # what the Retry button emits
    await until(lambda: accounts.auth.resolve_session(other) is None)
    assert calls == [1, 1]
    await app_user.should_see("Other sessions ended.")
