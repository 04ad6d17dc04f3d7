"""Security headers: every kind of response of the whole app carries them (pages, static files, the
socket.io handshake and websocket, the API, health, /metrics, redirects, 404s, 413s), pages allow their
own inline scripts by a per-response nonce only, and a route's own stricter header is kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nicegui import __version__ as nicegui_version
from nicegui import app
from nicegui.testing import User
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from nox_ui.api import API_PREFIX
from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.roles import PANEL
from nox_ui.security_headers import DOCS_PATH, SecurityHeaders
from tests.conftest import ADMIN_PASSWORD, sign_in

ALWAYS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
DENIED = ("camera", "microphone", "geolocation", "payment", "usb")
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """As in conftest, with NOX_BASE_URL taken from an indirect parameter when a test gives one."""
    return Settings(
        data_dir=tmp_path / "data", secret_key="test-secret-key", base_url=getattr(request, "param", None)
    )


def policy(value: str) -> dict[str, list[str]]:
    directives = (part.split() for part in value.split(";") if part.strip())
    return {words[0]: words[1:] for words in directives}


def assert_secured(headers: Mapping[str, str], *, https: bool = False) -> dict[str, list[str]]:
    """The headers every response carries; returns its Content-Security-Policy as directives."""
    get = headers.get
    for name, value in ALWAYS.items():
        assert get(name) == value, (name, get(name))
    permissions = get("permissions-policy") or ""
    for feature in DENIED:
        assert f"{feature}=()" in permissions, permissions
    assert (get("strict-transport-security") == HSTS) is https, get("strict-transport-security")
    csp = policy(get("content-security-policy") or "")
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp.get("object-src", csp["default-src"]) == ["'none'"]
    return csp


def assert_resource_policy(csp: dict[str, list[str]]) -> None:
    """A response that is no page: nothing may load or run if a browser opens it directly."""
    assert csp["default-src"] == ["'none'"]
    assert "script-src" not in csp


def assert_page_policy(csp: dict[str, list[str]], body: str) -> str:
    """The page policy, and every <script> of the page carrying its nonce; returns the nonce."""
    assert csp["default-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    nonces = [source for source in csp["script-src"] if source.startswith("'nonce-")]
    assert len(nonces) == 1, csp["script-src"]
    nonce = nonces[0][len("'nonce-") : -1]
    tags = re.findall(r"<script\b[^>]*>", body)
    assert tags, "the page has no script at all"
    assert all(f'nonce="{nonce}"' in tag for tag in tags), [t for t in tags if nonce not in t]
    return nonce


async def test_pages_carry_the_page_policy_with_a_fresh_nonce_for_their_own_scripts(app_user: User) -> None:
    client = app_user.http_client
    first = await client.get("/login")
    second = await client.get("/login")
    assert first.status_code == second.status_code == 200
    nonce = assert_page_policy(assert_secured(first.headers), first.text)
    assert assert_page_policy(assert_secured(second.headers), second.text) != nonce
    assert int(first.headers["content-length"]) == first.num_bytes_downloaded
    # A NiceGUI page needs eval (Vue templates compiled in the browser) and inline styles (Quasar).
    csp = policy(first.headers["content-security-policy"])
    assert "'unsafe-eval'" in csp["script-src"]
    assert "'unsafe-inline'" in csp["style-src"]


async def test_text_an_admin_controls_never_becomes_a_script_with_the_nonce(
    app_user: User, accounts: Services
) -> None:
    """Every `<script` of a page gets the nonce, so no stored text may reach the page as a tag."""
    accounts.settings.update(PANEL, {"site_name": "<script>window.pwned=1</script>"})
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    response = await app_user.http_client.get("/")
    assert response.status_code == 200
    assert_page_policy(assert_secured(response.headers), response.text)
    assert "window.pwned" in response.text  # on the page (title, header), as escaped text only
    assert not re.search(r"<script[^>]*>window\.pwned", response.text)


RESOURCES = [
    ("GET", "/healthz", 200),
    ("GET", "/readyz", 200),
    ("GET", "/metrics", 401),
    ("GET", f"{API_PREFIX}/openapi.json", 200),
    ("GET", f"{API_PREFIX}/users", 401),
    ("GET", f"{API_PREFIX}/no-such-route", 404),
    ("POST", f"{API_PREFIX}/auth/token", 422),
    ("POST", f"{API_PREFIX}/auth/token", 413),
    ("POST", "/login", 413),
    ("GET", "/admin/users", 303),
    ("GET", f"/_nicegui/{nicegui_version}/static/nicegui.js", 200),
    ("GET", f"/_nicegui/{nicegui_version}/static/no-such-file.js", 404),
    ("GET", "/_nicegui_ws/socket.io/?EIO=4&transport=polling", 200),
]


async def test_every_kind_of_response_carries_the_headers(app_user: User, accounts: Services) -> None:
    """API, health, /metrics, redirects, 404s, 413s, static files and socket.io's polling handshake get
    the locked resource policy; pages, the 404 page included, get the page policy."""
    accounts.metrics.tick()  # /readyz: a recent sample
    client = app_user.http_client
    for method, path, status in RESOURCES:
        # 1 MiB is the default max_request_kib
        body = b"x" * (1024 * 1024 + 1) if status == 413 else b"{}"
        response = await client.request(
            method,
            path,
            content=body if method == "POST" else None,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == status, (path, response.status_code, response.text[:200])
        assert_resource_policy(assert_secured(response.headers))

    for path, status in (("/login", 200), ("/no-such-screen", 404)):
        response = await client.get(path)
        assert response.status_code == status, path
        assert_page_policy(assert_secured(response.headers), response.text)


async def test_the_api_docs_may_load_swagger_ui_from_its_cdn_and_nothing_else(app_user: User) -> None:
    assert f"{API_PREFIX}/docs" == DOCS_PATH
    response = await app_user.http_client.get(DOCS_PATH)
    assert response.status_code == 200
    csp = assert_secured(response.headers)
    assert_page_policy(csp, response.text)
    assert "https://cdn.jsdelivr.net" in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert "'unsafe-inline'" not in csp["style-src"]
    # The page's own policy is not relaxed for the rest of the API
    other = await app_user.http_client.get(f"{API_PREFIX}/openapi.json")
    assert "cdn.jsdelivr.net" not in other.headers["content-security-policy"]


async def test_the_websocket_handshake_carries_the_headers(app_user: User) -> None:
    """The socket.io websocket of the real app, called as uvicorn calls it."""
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/_nicegui_ws/socket.io/",
        "raw_path": b"/_nicegui_ws/socket.io/",
        "root_path": "",
        "query_string": b"EIO=4&transport=websocket",
        "headers": [(b"host", b"test"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, receive, send)
    accepted = [m for m in sent if m["type"] == "websocket.accept"]
    assert accepted, sent
    headers = {k.decode(): v.decode() for k, v in accepted[0].get("headers", [])}
    assert_resource_policy(assert_secured(headers))


@pytest.mark.parametrize("settings", ["https://panel.example.org"], indirect=True)
async def test_hsts_only_when_the_base_url_is_https(app_user: User) -> None:
    for path in ("/login", "/healthz", f"{API_PREFIX}/users"):
        assert_secured((await app_user.http_client.get(path)).headers, https=True)


async def test_no_hsts_over_plain_http(app_user: User) -> None:
    for path in ("/login", "/healthz", f"{API_PREFIX}/users"):
        assert "strict-transport-security" not in (await app_user.http_client.get(path)).headers


PAGE = "<!doctype html><html><head><script>var a = 1;</script></head><body>" + "x" * 2000
PAGE += '<SCRIPT type="module">var b = 2;</SCRIPT><script src="/app.js"></script></body></html>'


def _small_app() -> Starlette:
    def page(_request: Request) -> Response:
        return HTMLResponse(PAGE, headers={"X-NiceGUI-Content": "page"})

    def stricter(_request: Request) -> Response:
        return JSONResponse(
            {},
            headers={
                "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "sandbox",
                "Permissions-Policy": "camera=(self), fullscreen=(self)",
            },
        )

    def weaker(_request: Request) -> Response:
        return JSONResponse(
            {},
            headers={
                "X-Frame-Options": "SAMEORIGIN",
                "Referrer-Policy": "unsafe-url",
                "Cross-Origin-Opener-Policy": "unsafe-none",
                "Strict-Transport-Security": "max-age=60",
            },
        )

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    return Starlette(
        routes=[
            Route("/page", page),
            Route("/stricter", stricter),
            Route("/weaker", weaker),
            WebSocketRoute("/socket", socket),
        ]
    )


def test_a_gzipped_page_gets_its_nonce_and_a_matching_length() -> None:
    """NiceGUI compresses pages inside this layer; the nonce still reaches every script tag."""
    with TestClient(SecurityHeaders(GZipMiddleware(_small_app()), https=False)) as client:
        response = client.get("/page", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == response.num_bytes_downloaded
    nonce = assert_page_policy(assert_secured(response.headers), response.text)
    assert response.text.count(f'nonce="{nonce}"') == 3
    assert "var a = 1;" in response.text and "var b = 2;" in response.text


def test_a_route_keeps_its_stricter_headers_and_loses_its_weaker_ones() -> None:
    with TestClient(SecurityHeaders(_small_app(), https=True)) as client:
        stricter = client.get("/stricter")
        weaker = client.get("/weaker")
        with client.websocket_connect("/socket") as socket:
            raw: list[tuple[bytes, bytes]] = list(socket.extra_headers or [])
    socket_headers = {key.decode(): value.decode() for key, value in raw}

    assert stricter.headers["referrer-policy"] == "no-referrer"
    # Both policies reach the browser, which enforces each: the route's can only narrow ours.
    assert stricter.headers.get_list("content-security-policy")[0] == "sandbox"
    assert "default-src 'none'" in stricter.headers.get_list("content-security-policy")[1]
    permissions = stricter.headers["permissions-policy"]
    assert "camera=()" in permissions and "camera=(self)" not in permissions
    assert "fullscreen=(self)" in permissions

    assert_secured(weaker.headers, https=True)
    assert len(weaker.headers.get_list("x-frame-options")) == 1
    assert len(weaker.headers.get_list("strict-transport-security")) == 1
    assert_secured(socket_headers, https=True)
