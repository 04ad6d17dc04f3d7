"""Sign-in throttling under a burst, the bound on concurrent Argon2 verifications, and the
current-password check of /profile (throttled and audited like sign-in)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI

from nox_ui.api import API_PREFIX, create_api
from nox_ui.app import Services
from nox_ui.errors import RateLimited, Unauthenticated
from nox_ui.services import auth as auth_module
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD


def attempt(services: Services, password: str) -> str:
    try:
        services.auth.check_password("admin", password, ip="198.51.100.7")
    except RateLimited:
        return "429"
    except Unauthenticated:
        return "401"
    return "ok"


def test_a_burst_of_wrong_passwords_gets_no_more_than_the_limit_of_tries(accounts: Services) -> None:
    """25 wrong passwords at once for one account: 10 are verified (401), the other 15 are refused
    before any verification (429), because each attempt is counted before it is checked."""
    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda _: attempt(accounts, "wrong password!"), range(25)))
    assert results.count("401") == 10
    assert results.count("429") == 15
    # Locked: even the right password waits now.
    assert attempt(accounts, ADMIN_PASSWORD) == "429"


def test_the_api_answers_429_to_a_concurrent_burst(accounts: Services) -> None:
    outer = FastAPI()
    outer.mount(API_PREFIX, create_api(accounts))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=outer, client=("198.51.100.8", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://nox") as client:
            responses = await asyncio.gather(
                *(
                    client.post("/api/v1/auth/token", json={"username": "admin", "password": "nope nope"})
                    for _ in range(25)
                )
            )
        return [r.status_code for r in responses]

    codes = asyncio.run(burst())
    assert codes.count(401) == 10
    assert codes.count(429) == 15


def test_a_success_resets_the_count_of_the_account(accounts: Services) -> None:
    for _ in range(9):
        assert attempt(accounts, "wrong password!") == "401"
    assert attempt(accounts, ADMIN_PASSWORD) == "ok"
    # A fresh allowance after the success: nine more wrong ones are still only 401.
    assert [attempt(accounts, "wrong password!") for _ in range(9)] == ["401"] * 9


def test_password_verifications_run_at_most_two_at_a_time(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Argon2 verification holds ~64 MiB; a burst queues for a turn instead of running all at once."""
    running = 0
    peak = 0
    lock = threading.Lock()
    real_verify = auth_module.verify_password

    def counting_verify(password_hash: str | None, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real_verify(password_hash, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(auth_module, "verify_password", counting_verify)
    # Waiting for a turn is bounded (429 after VERIFY_WAIT_SECONDS): on a busy machine five rounds of
    # Argon2 can take longer than that, which is not what this test is about.
    monkeypatch.setattr(auth_module, "VERIFY_WAIT_SECONDS", 600.0)
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: attempt(accounts, "wrong password!"), range(10)))
    assert results == ["401"] * 10
    assert peak == auth_module.VERIFY_CONCURRENCY


def test_a_wrong_current_password_is_throttled_and_audited(accounts: Services) -> None:
    user_id = accounts.users.get_by_username("victor").id or 0
    principal = accounts.auth.resolve_session(accounts.auth.start_session(user_id))
    assert principal is not None
    outcomes = []
    for _ in range(12):
        try:
            accounts.auth.verify_current_password(principal, "not my password", ip="192.0.2.4")
            outcomes.append("ok")
        except Unauthenticated:
            outcomes.append("wrong")
        except RateLimited:
            outcomes.append("throttled")
    assert outcomes == ["wrong"] * 10 + ["throttled"] * 2
    # Throttled means throttled: the right password is refused too until the window passes.
    with pytest.raises(RateLimited):
        accounts.auth.verify_current_password(principal, VIEWER_PASSWORD, ip="192.0.2.4")
    events = accounts.audit.query(action="auth.reauth.failure").events
    assert len(events) == 13
    assert {event.actor_name for event in events} == {"victor"}
    assert {event.source_ip for event in events} == {"192.0.2.4"}
    assert sorted({event.details for event in events}) == sorted(
        {'{"reason": "throttled"}', '{"reason": "wrong password"}'}
    )
