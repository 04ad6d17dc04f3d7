"""Fuzzing the REST API from its own OpenAPI document (schemathesis), through the whole stack that
`nox-ui serve` runs: NiceGUI's app, the request guards and the machine router of nox_ui/web.py.

Every operation gets valid and invalid requests as an admin (and, in the invalid ones, without a
token); every answer must be below 500 and match the document: a declared status, content type and
body schema. Deterministic (a fixed derandomized search) and bounded (EXAMPLES per operation and kind).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, assume, given, settings
from nicegui import app
from nicegui.testing import User
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from nox_ui.app import Services
from nox_ui.roles import PANEL
from tests.conftest import ADMIN_PASSWORD, bearer

EXAMPLES = 10  # random requests per operation and kind (valid, invalid), besides the boundary cases
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Linux pids stay below pid_max, at most 2**22: the fuzzer may never signal a real process of this
# machine (it runs as an admin, maybe as root), so the pid is pinned to one that cannot exist.
PID_THAT_CANNOT_EXIST = 2**22 + 1
SETTINGS_WRITES = {"PATCH /settings", "POST /settings/import"}
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


async def started_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """NiceGUI's app as the fixture started it: schemathesis would otherwise run its lifespan again."""
    if scope["type"] == "lifespan":
        raise RuntimeError("already started")  # before any message: "no lifespan support"
    await app(scope, receive, send)


class Fuzz:
    def __init__(self, services: Services, token: str) -> None:
        self.services = services
        self.headers = {"Authorization": f"Bearer {token}"}
        admin = services.users.get_by_username("admin")
        assert admin.id is not None
        self.admin_id = admin.id
        self.token_ids = {info.id for info in services.auth.list_tokens(admin.id)}
        self.settings_baseline = services.settings.export()
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def ends_the_session(self, case: schemathesis.Case) -> bool:
        """Requests that would end the fuzzing session itself: changing or deleting its own admin (a new
        password or role ends its tokens) or revoking its own token. Others' accounts and tokens are fair game."""
        label = case.operation.label
        ids = {str(value) for value in (case.path_parameters or {}).values()}
        if label in ("PATCH /users/{user_id}", "DELETE /users/{user_id}"):
            return str(self.admin_id) in ids
        if label == "DELETE /tokens/{token_id}":
            return bool(ids & {str(i) for i in self.token_ids})
        return False

    def pin(self, case: schemathesis.Case) -> None:
        label = case.operation.label
        if label == "POST /processes/{pid}/signal" and _is_int(case.path_parameters.get("pid")):
            case.path_parameters["pid"] = PID_THAT_CANNOT_EXIST
        if label == "POST /notifiers/{notifier_id}/test":
            case.query = {**(case.query or {}), "wait": 0}  # the outcome is not the point; waiting 30 s is

    def call(self, case: schemathesis.Case) -> None:
        """One request and its checks; raises schemathesis's failure (with a curl line to repeat it)."""
        self.pin(case)
        label = case.operation.label
        try:
            response = case.call_and_validate(headers=self.headers, checks=CHECKS)
            self.statuses[label][response.status_code] += 1
        finally:
            if label in SETTINGS_WRITES:
                # a random valid setting (a 1/hour API limit, ...) would starve the operations after it
                self.services.settings.import_(PANEL, self.settings_baseline)

    def boundaries(self, schema: Any, operation: Any) -> str | None:
        """schemathesis's coverage cases: each declared limit and just past it, wrong types, missing
        fields, for every parameter; deterministic by construction."""
        config = schema.config.generation_for(operation=operation, phase="coverage")
        cases = schema.iter_coverage_cases(operation, generation_modes=MODES, generation_config=config)
        for case in cases:
            if self.ends_the_session(case):
                continue
            try:
                self.call(case)
            except (Exception, BaseExceptionGroup) as exc:
                return f"{operation.label} (coverage):\n{exc}"
        return None

    def random(self, operation: Any, mode: GenerationMode) -> str | None:
        """Random requests from hypothesis, derandomized: the same ones on every run."""

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            assume(not self.ends_the_session(case))
            self.call(case)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            return f"{operation.label} ({mode.value}):\n{exc}"
        return None

    def all(self) -> tuple[list[str], list[str]]:
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", started_app)
        failures: list[str] = []
        labels: list[str] = []
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            labels.append(operation.label)
            found = [self.boundaries(schema, operation)]
            found += [self.random(operation, mode) for mode in MODES]
            failures += [failure for failure in found if failure]
        return labels, failures


def _is_int(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


async def test_fuzzing_every_operation_finds_no_server_error_and_no_answer_off_the_schema(
    app_user: User, accounts: Services
) -> None:
    # Lifted, or nearly every request after the first few hundred would be a (valid) 429.
    accounts.settings.update(PANEL, {"api_rate_limit": "100000/second"})
    response = await app_user.http_client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    fuzz = Fuzz(accounts, response.json()["access_token"])

    labels, failures = await asyncio.to_thread(fuzz.all)

    assert not failures, "\n\n".join(failures)
    assert len(labels) >= 45 and {"POST /alerts/rules", "DELETE /tokens/{token_id}"} <= set(labels)
    # Not vacuous: every operation was reached past authentication and the rate limit.
    unreached = [label for label in labels if not set(fuzz.statuses[label]) - {401, 429}]
    assert not unreached, unreached
    assert accounts.users.get(fuzz.admin_id).role == "admin"


# Each of these was a 500 (OverflowError or ValueError from SQLite or datetime) before its fix.
ONCE_SERVER_ERRORS = [
    ("POST", "/api/v1/alerts/rules", {"name": "n", "metric": "cpu.percent", "notifiers": [2**64]}),
    ("POST", "/api/v1/alerts/rules", {"name": "n", "metric": "cpu.percent", "notifiers": [-(2**64)]}),
    ("POST", "/api/v1/alerts/rules/preview", {"name": "n", "metric": "cpu.percent", "notifiers": [2**64]}),
    ("PATCH", "/api/v1/alerts/rules/1", {"notifiers": [2**63]}),
    ("GET", f"/api/v1/audit?offset={2**64}", None),
    ("GET", "/api/v1/audit?since=0001-01-01T00:00:00%2B14:00", None),
    ("POST", "/api/v1/audit/archive", {"before": "0001-01-01T00:00:00+14:00"}),
    ("POST", "/api/v1/audit/archive", {"before": "9999-12-31T23:59:59-14:00"}),
    ("GET", f"/api/v1/metrics/history?metric=cpu.percent&since=0&until=86400&step={2**64}", None),
    ("GET", "/api/v1/metrics/history?metric=cpu.percent&since=0001-01-01&until=0001-01-02", None),
]


def test_the_requests_that_were_server_errors_are_422(api: TestClient, accounts: Services) -> None:
    accounts.alerts.rules.create(PANEL, {"name": "cpu", "metric": "cpu.percent", "threshold": 90})
    # a stored series, so a history query reaches the database, where the step overflowed
    accounts.metrics.history.write([(int(time.time()) // 60 * 60 - 120, {"cpu.percent": (1.0, 1.0, 1.0)})])
    headers = bearer(api, "admin", ADMIN_PASSWORD)
    for method, url, body in ONCE_SERVER_ERRORS:
        response = api.request(method, url, headers=headers, json=body)
        assert response.status_code == 422, (method, url, body, response.text)
        assert response.json()["detail"]


CONTROL_CHARACTER_PATHS = [
    ("GET", "/api/v1/users/%C2%96%3F%0A"),
    ("GET", "/api/v1/users/%0Ax"),
    ("GET", "/api/v1/notifiers/%0A%0A"),
    ("GET", "/api/v1/notifiers/1%0D%0Ax"),
    ("DELETE", "/api/v1/tokens/%00%0Ax"),
    ("PATCH", "/api/v1/alerts/rules/%0A1"),
    ("GET", "/api/v1/%0A/users"),
    ("GET", "/healthz/%0Ax"),
    ("GET", "/metrics%0Ax"),
]


async def test_machine_paths_with_control_characters_or_a_wrong_method_get_json_not_a_500(
    app_user: User,
) -> None:
    """Through NiceGUI's app, as served: the machine router answers outside NiceGUI's error handling."""
    client = app_user.http_client
    token = await client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for method, path in CONTROL_CHARACTER_PATHS:
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code in (404, 422), (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"]
    for method, path in [("POST", "/healthz"), ("DELETE", "/readyz"), ("PUT", "/metrics")]:
        response = await client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.json() == {"detail": "Method Not Allowed"}
        assert "GET" in response.headers["allow"]
