"""What every request passes first: the body limit (413 before the body is read) and the client
address (forwarded headers believed only from NOX_TRUSTED_PROXIES), through the app as served."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from nicegui.testing import User
from starlette.types import Receive, Scope, Send

from nox_ui.app import Services
from nox_ui.http_guard import guard_http
from nox_ui.roles import PANEL

MIB = 1024 * 1024


async def test_a_body_over_the_limit_is_refused_with_413_on_api_and_page_routes(
    app_user: User, accounts: Services
) -> None:
    client = app_user.http_client
    big = b"{" + b" " * (2 * MIB) + b"}"
    for path in ("/api/v1/auth/token", "/auth/complete", "/", "/_nicegui/unknown"):
        response = await client.post(path, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413, path
        assert response.json() == {"detail": "request body too large: the limit is 1024 KiB"}
    # Under the limit the route answers as usual (here: a wrong password, 401).
    response = await client.post("/api/v1/auth/token", json={"username": "admin", "password": "x" * 1000})
    assert response.status_code == 401


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(app_user: User, accounts: Services) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"username": "admin", "password": "'
        for _ in range(64):  # 4 MiB in 64 KiB pieces, with no Content-Length
            sent += 64 * 1024
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = await app_user.http_client.post(
        "/api/v1/auth/token", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert sent <= 2 * MIB  # the rest was never read


async def test_the_limit_follows_the_runtime_setting(app_user: User, accounts: Services) -> None:
    accounts.settings.update(PANEL, {"max_request_kib": 16})
    response = await app_user.http_client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "y" * (20 * 1024)}
    )
    assert response.status_code == 413
    assert "16 KiB" in response.json()["detail"]


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(
    app_user: User, accounts: Services
) -> None:
    """15 wrong passwords, each claiming a new X-Forwarded-For: all counted against the real address."""
    codes = []
    for n in range(15):
        response = await app_user.http_client.post(
            "/api/v1/auth/token",
            json={"username": "admin", "password": "wrong password"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        codes.append(response.status_code)
    assert codes == [401] * 10 + [429] * 5
    ips = {event.source_ip for event in accounts.audit.query(action="auth.login.failure").events}
    assert ips == {"127.0.0.1"}


async def client_of(app: object, headers: dict[str, str], peer: str) -> dict[str, str]:
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://nox") as client:
        response = await client.get("/", headers=headers)
    return dict(response.json())


async def echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    """The smallest app that says which client and scheme it was given."""
    body = json.dumps({"client": scope["client"][0], "scheme": scope["scheme"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def test_only_a_trusted_proxy_sets_the_client_address() -> None:
    guarded = guard_http(echo_client, trusted_proxies=["10.1.0.0/16", "::1"], max_body=lambda: MIB)
    forwarded = {"X-Forwarded-For": "198.51.100.23, 10.1.2.3", "X-Forwarded-Proto": "https"}
    assert await client_of(guarded, forwarded, "10.1.0.5") == {"client": "198.51.100.23", "scheme": "https"}
    assert await client_of(guarded, forwarded, "::1") == {"client": "198.51.100.23", "scheme": "https"}
    # Anyone else's forwarded headers are ignored.
    assert await client_of(guarded, forwarded, "192.0.2.50") == {"client": "192.0.2.50", "scheme": "http"}
    nobody = guard_http(echo_client, trusted_proxies=[], max_body=lambda: MIB)
    assert await client_of(nobody, forwarded, "127.0.0.1") == {"client": "127.0.0.1", "scheme": "http"}
