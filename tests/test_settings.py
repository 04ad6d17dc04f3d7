"""Runtime settings: the registry, atomic changes, secrets, live application, export/import, audit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from nox_ui.app import Services, build_services
from nox_ui.config import Settings
from nox_ui.errors import Forbidden
from nox_ui.models import AuditEvent, RuntimeSetting
from nox_ui.roles import Principal, Role
from nox_ui.runtime_settings import GROUPS, registry
from nox_ui.services.settings import InvalidSettings
from tests.conftest import bearer

NAMED_BY_OTHER_ISSUES = {
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "smtp_from",
    "smtp_starttls",
    "api_rate_limit",
    "login_max_failures",
    "login_lockout_seconds",
    "session_idle_minutes",
    "session_max_hours",
    "history_minute_days",
    "history_hour_days",
    "backup_schedule",
    "backup_keep",
}
ADMIN = Principal(user_id=1, username="admin", role=Role.ADMIN)


@pytest.fixture
def admin_headers(api: TestClient) -> dict[str, str]:
    return bearer(api, "admin", "correct horse battery")


def stored_rows(services: Services) -> dict[str, str]:
    with services.db.session() as session:
        return {row.key: row.value for row in session.exec(select(RuntimeSetting)).all()}


def settings_events(services: Services) -> list[AuditEvent]:
    with services.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action.startswith("settings."))
        return list(session.exec(query).all())


def test_registry_names_every_setting_other_issues_rely_on_in_the_six_groups() -> None:
    infos = registry()
    assert set(infos) >= NAMED_BY_OTHER_ISSUES
    assert {info.group for info in infos.values()} == set(GROUPS)
    assert infos["api_rate_limit"].default == "600/minute"
    assert infos["smtp_password"].secret and not infos["smtp_host"].secret
    assert all(info.description for info in infos.values())


def test_api_get_is_flat_with_secrets_null_and_schema_describes_each_key(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    accounts.settings.update(ADMIN, {"smtp_password": "hunter2-mail-secret"})
    values = api.get("/api/v1/settings", headers=admin_headers).json()
    assert values["api_rate_limit"] == "600/minute"
    assert values["session_idle_minutes"] == 480
    assert values["smtp_password"] is None
    schema = api.get("/api/v1/settings/schema", headers=admin_headers).json()
    assert set(schema) == set(values)
    assert schema["smtp_port"] == {
        "type": "integer",
        "default": 587,
        "group": "Alerts & email",
        "description": schema["smtp_port"]["description"],
        "secret": False,
        "minimum": 1,
        "maximum": 65535,
    }
    assert schema["smtp_password"]["is_set"] is True
    assert schema["smtp_password"]["default"] is None


def test_patch_changes_only_the_named_keys_and_stores_them(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    response = api.patch(
        "/api/v1/settings",
        json={"smtp_host": "mail.example.org", "smtp_port": 2525, "backup_keep": 3},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["smtp_host"] == "mail.example.org"
    assert response.json()["smtp_port"] == 2525
    assert stored_rows(accounts) == {
        "smtp_host": '"mail.example.org"',
        "smtp_port": "2525",
        "backup_keep": "3",
    }
    # null resets to the default and removes the stored row
    api.patch("/api/v1/settings", json={"backup_keep": None}, headers=admin_headers)
    assert "backup_keep" not in stored_rows(accounts)
    assert accounts.settings.current.backup_keep == 7


@pytest.mark.parametrize(
    ("body", "bad_key"),
    [
        ({"smtp_host": "mail.example.org", "no_such_setting": 1}, "no_such_setting"),
        ({"smtp_host": "mail.example.org", "smtp_port": 70000}, "smtp_port"),
        ({"smtp_host": "mail.example.org", "smtp_port": "25"}, "smtp_port"),
        ({"smtp_host": "mail.example.org", "smtp_starttls": "yes"}, "smtp_starttls"),
        ({"smtp_host": "mail.example.org", "backup_schedule": "every day"}, "backup_schedule"),
        ({"smtp_host": "mail.example.org", "api_rate_limit": "lots"}, "api_rate_limit"),
        ({"smtp_host": "mail.example.org", "smtp_from": "not an address"}, "smtp_from"),
        ({"smtp_host": "mail.example.org", "history_hour_days": 7}, "history_hour_days"),
        ({"smtp_host": "mail.example.org", "site_name": ""}, "site_name"),
    ],
)
def test_an_invalid_patch_is_422_naming_the_key_and_changes_nothing(
    api: TestClient, accounts: Services, admin_headers: dict[str, str], body: dict, bad_key: str
) -> None:
    before = api.get("/api/v1/settings", headers=admin_headers).json()
    events_before = len(settings_events(accounts))
    response = api.patch("/api/v1/settings", json=body, headers=admin_headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [entry["loc"] for entry in detail] == [["body", bad_key]]
    assert detail[0]["msg"]
    assert api.get("/api/v1/settings", headers=admin_headers).json() == before
    assert stored_rows(accounts) == {}
    assert len(settings_events(accounts)) == events_before


def test_a_patch_that_is_not_an_object_is_422(api: TestClient, admin_headers: dict[str, str]) -> None:
    response = api.patch("/api/v1/settings", json=["smtp_host"], headers=admin_headers)
    assert response.status_code == 422


def test_operators_and_viewers_get_403_and_the_refusal_is_audited(
    api: TestClient, accounts: Services
) -> None:
    for username, password in (("olga", "operator password 1"), ("victor", "viewer password 123")):
        headers = bearer(api, username, password)
        assert api.get("/api/v1/settings", headers=headers).status_code == 403
        assert api.get("/api/v1/settings/schema", headers=headers).status_code == 403
        assert api.patch("/api/v1/settings", json={"backup_keep": 2}, headers=headers).status_code == 403
        assert api.get("/api/v1/settings/export", headers=headers).status_code == 403
        response = api.post("/api/v1/settings/import", json={"settings": {}}, headers=headers)
        assert response.status_code == 403
    assert accounts.settings.current.backup_keep == 7
    with pytest.raises(Forbidden):
        accounts.settings.update(
            Principal(user_id=2, username="olga", role=Role.OPERATOR), {"backup_keep": 2}
        )
    assert accounts.settings.current.backup_keep == 7


def test_secrets_are_write_only_everywhere(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    secret = "s3cret-smtp-passw0rd"
    response = api.patch("/api/v1/settings", json={"smtp_password": secret}, headers=admin_headers)
    assert response.status_code == 200
    assert accounts.settings.current.smtp_password == secret  # usable by the mailer
    for path in ("/api/v1/settings", "/api/v1/settings/schema", "/api/v1/settings/export"):
        assert secret not in api.get(path, headers=admin_headers).text
    audit = api.get("/api/v1/audit?action=settings", headers=admin_headers).text
    assert "smtp_password" in audit
    assert secret not in audit
    dry = api.post(
        "/api/v1/settings/import?dry_run=true",
        json={"settings": {"smtp_password": "another-secret-value"}},
        headers=admin_headers,
    )
    assert "another-secret-value" not in dry.text
    assert dry.json()["changes"] == [
        {"key": "smtp_password", "old": "set", "new": "set (new value)", "secret": True}
    ]


def test_changes_apply_live_to_sign_in_policies_and_history_retention(accounts: Services) -> None:
    accounts.settings.update(
        ADMIN,
        {
            "session_idle_minutes": 15,
            "session_max_hours": 2,
            "login_max_failures": 3,
            "history_minute_days": 3,
            "history_hour_days": 30,
        },
    )
    assert accounts.auth.session_policy.idle == timedelta(minutes=15)
    assert accounts.auth.session_policy.absolute == timedelta(hours=2)
    assert accounts.auth.login_policy.max_failures == 3
    assert accounts.metrics.history.retention.minute_days == 3
    assert accounts.metrics.history.retention.hour_days == 30


def test_a_lower_failure_limit_locks_sign_in_sooner(accounts: Services) -> None:
    from nox_ui.errors import RateLimited, Unauthenticated

    accounts.settings.update(ADMIN, {"login_max_failures": 2})
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            accounts.auth.check_password("victor", "wrong password!!", ip="10.0.0.9")
    with pytest.raises(RateLimited):
        accounts.auth.check_password("victor", "viewer password 123", ip="10.0.0.9")


def test_settings_survive_a_restart_and_a_bad_stored_value_falls_back_to_its_default(
    settings: Settings, accounts: Services
) -> None:
    accounts.settings.update(ADMIN, {"site_name": "Rack 7", "backup_keep": 12})
    with accounts.db.session() as session:
        session.add(RuntimeSetting(key="smtp_port", value='"not a port"'))
        session.add(RuntimeSetting(key="retired_setting", value="1"))
        session.commit()
    again = build_services(settings)
    try:
        assert again.settings.current.site_name == "Rack 7"
        assert again.settings.current.backup_keep == 12
        assert again.settings.current.smtp_port == 587
    finally:
        again.close()


def test_every_change_is_audited_with_old_and_new(accounts: Services) -> None:
    accounts.settings.update(ADMIN, {"backup_keep": 9, "smtp_starttls": False}, ip="10.1.2.3")
    accounts.settings.update(ADMIN, {"backup_keep": 9})  # no change, no event
    events = settings_events(accounts)
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.outcome, event.actor_name, event.source_ip) == (
        "settings.update",
        "success",
        "admin",
        "10.1.2.3",
    )
    assert json.loads(event.details) == {
        "backup_keep": {"old": 7, "new": 9},
        "smtp_starttls": {"old": True, "new": False},
    }
    assert accounts.audit.verify().ok


def test_export_then_import_round_trips_with_a_dry_run_diff_first(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    api.patch(
        "/api/v1/settings",
        json={"site_name": "Edge", "backup_schedule": "30 2 * * 1", "smtp_password": "keep-me-secret"},
        headers=admin_headers,
    )
    exported = api.get("/api/v1/settings/export", headers=admin_headers).json()
    assert exported["format"] == "nox-ui-settings/1"
    assert "smtp_password" not in exported["settings"]
    api.patch("/api/v1/settings", json={"site_name": "Changed", "backup_keep": 2}, headers=admin_headers)

    dry = api.post("/api/v1/settings/import?dry_run=true", json=exported, headers=admin_headers)
    assert dry.status_code == 200
    assert dry.json() == {
        "dry_run": True,
        "changes": [
            {"key": "site_name", "old": "Changed", "new": "Edge", "secret": False},
            {"key": "backup_keep", "old": 2, "new": 7, "secret": False},
        ],
    }
    assert accounts.settings.current.site_name == "Changed"  # a dry run changes nothing

    applied = api.post("/api/v1/settings/import", json=exported, headers=admin_headers)
    assert applied.json()["dry_run"] is False
    assert accounts.settings.current.site_name == "Edge"
    assert accounts.settings.current.backup_keep == 7
    assert accounts.settings.current.smtp_password == "keep-me-secret"  # not in the file, kept
    assert [e.action for e in settings_events(accounts)][-1] == "settings.import"


def test_an_invalid_import_changes_nothing(
    api: TestClient, accounts: Services, admin_headers: dict[str, str]
) -> None:
    for body in (
        {"settings": {"site_name": "Fine", "backup_keep": 0}},
        {"format": "something-else/9", "settings": {"site_name": "Fine"}},
        {"site_name": "Fine"},
    ):
        response = api.post("/api/v1/settings/import", json=body, headers=admin_headers)
        assert response.status_code == 422, body
        assert response.json()["detail"]
    assert accounts.settings.current.site_name == "Nox UI"


def test_invalid_settings_error_names_every_bad_key(accounts: Services) -> None:
    with pytest.raises(InvalidSettings) as caught:
        accounts.settings.update(ADMIN, {"smtp_port": 0, "backup_keep": -1, "bogus": True})
    assert set(caught.value.errors) == {"bogus"}  # unknown keys are reported before values
    with pytest.raises(InvalidSettings) as caught:
        accounts.settings.update(ADMIN, {"smtp_port": 0, "backup_keep": -1})
    assert set(caught.value.errors) == {"smtp_port", "backup_keep"}


def test_api_rate_limit_throttles_with_retry_after_and_a_new_limit_applies_at_once(
    api: TestClient, accounts: Services, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The windows follow the clock's minutes: 20 s into one, held there, so the requests cannot
    # straddle a minute (where a fixed window rightly lets the fourth through).
    monkeypatch.setattr(accounts.api_limits._windows, "clock", lambda: 60 * 29_000_000 + 20.0)
    accounts.settings.update(ADMIN, {"api_rate_limit": "3/minute"})
    statuses = [api.get("/api/v1/me", headers=admin_headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.get("/api/v1/me", headers=admin_headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"  # until the window ends
    assert "3/minute" in refused.json()["detail"]
    accounts.settings.update(ADMIN, {"api_rate_limit": "100/minute"})
    assert api.get("/api/v1/me", headers=admin_headers).status_code == 200
