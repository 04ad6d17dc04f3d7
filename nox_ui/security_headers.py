"""Browser security headers on every response: a Content-Security-Policy and its companions.

Three policies, chosen per response:
- NiceGUI pages (`text/html` marked `X-NiceGUI-Content: page`): `PAGE_POLICY`. Its inline scripts are
  allowed by a fresh nonce per response, which this layer writes into each `<script` tag of the page
  NiceGUI rendered (untrusted values inside it are HTML-escaped by NiceGUI, so every `<script` there is
  NiceGUI's or ours); a script injected later into the DOM, or an inline event handler, does not run.
- Swagger UI at `/api/v1/docs`: `DOCS_POLICY`, which also allows FastAPI's CDN for its script and style.
- Everything else (API, /metrics, health, static files, redirects, errors): `RESOURCE_POLICY`, which
  lets nothing load or run if a browser is ever pointed at such a response directly.
"""

from __future__ import annotations

import gzip
import re
import secrets

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATH = "/api/v1/docs"

# The strictest policy under which every NiceGUI 3 / Quasar screen of the panel works (proved by
# tests/test_browser_csp.py). What is still allowed, and why:
# - script-src 'unsafe-eval': NiceGUI compiles Vue templates in the browser and evaluates `:prop`
#   expressions, JavaScript event handlers and `ui.run_javascript` with eval/new Function (nicegui.js).
#   Inline `<script>` blocks need no 'unsafe-inline': they carry the per-response nonce.
# - style-src 'unsafe-inline': Quasar, Vue and NiceGUI (`addStyle`, `ui.add_css`, Tailwind's runtime)
#   insert `<style>` elements and `style=` attributes at run time, which a nonce cannot cover.
# - img-src data:: NiceGUI sends the emoji favicon (`ui.run(favicon=...)`) as a data: URL.
# - connect-src 'self': socket.io's polling and its websocket to the same host ('self' matches ws:/wss:
#   of the page's own host and port in CSP Level 3 browsers).
PAGE_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'nonce-{nonce}' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self'; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)

# FastAPI's Swagger UI loads its bundle and stylesheet from jsDelivr (so without internet access the
# page stays blank) and its favicon from fastapi.tiangolo.com; its stylesheet draws icons as data: SVGs.
# It needs neither 'unsafe-eval' nor inline styles; its one inline script carries the nonce.
DOCS_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'nonce-{nonce}' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)

RESOURCE_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# Powerful browser features the panel never uses, denied to it and to anything it might embed.
DENIED_FEATURES = (
    "accelerometer",
    "autoplay",
    "browsing-topics",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "hid",
    "idle-detection",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
)
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in DENIED_FEATURES)
HSTS = "max-age=31536000; includeSubDomains"
HSTS_MIN_AGE = 31536000

_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)
_MAX_AGE = re.compile(r"max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def _hsts_is_strong(value: str) -> bool:
    match = _MAX_AGE.search(value)
    if match is None:
        return False
    return int(match.group(1)) >= HSTS_MIN_AGE and "includesubdomains" in value.lower()


# A value a route set itself stays when it is at least as strict as ours; otherwise ours replaces it.
_STRONG_ENOUGH = {
    b"x-frame-options": lambda value: value.strip().upper() == "DENY",
    b"x-content-type-options": lambda value: value.strip().lower() == "nosniff",
    b"referrer-policy": lambda value: value.strip().lower() in {"no-referrer", "same-origin"},
    b"cross-origin-opener-policy": lambda value: value.strip().lower() == "same-origin",
    b"cross-origin-resource-policy": lambda value: value.strip().lower() == "same-origin",
    b"strict-transport-security": _hsts_is_strong,
}


class SecurityHeaders:
    """ASGI layer adding the security headers at `http.response.start` (and on websocket handshakes)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        fixed = {
            b"x-frame-options": b"DENY",
            b"x-content-type-options": b"nosniff",
            b"referrer-policy": b"same-origin",
            b"cross-origin-opener-policy": b"same-origin",
            b"cross-origin-resource-policy": b"same-origin",
        }
        if https:
            fixed[b"strict-transport-security"] = HSTS.encode()
        self.fixed = fixed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, receive, self._websocket_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        docs = scope["path"] == DOCS_PATH or scope["path"].startswith(DOCS_PATH + "/")
        held: Message | None = None
        chunks: list[bytes] = []

        async def secured_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if _is_document(headers, docs):
                    held = {**message, "headers": headers}  # sent with the body, once its nonce is in
                    return
                await send({**message, "headers": self._secure(headers, RESOURCE_POLICY)})
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, held = held, None
                await self._send_document(send, start, b"".join(chunks), docs)
            else:
                await send(message)

        await self.app(scope, receive, secured_send)

    async def _send_document(self, send: Send, start: Message, body: bytes, docs: bool) -> None:
        nonce = secrets.token_urlsafe(18)
        headers = start["headers"]
        if body:
            body = _with_nonce(body, nonce, _header(headers, b"content-encoding"))
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        policy = (DOCS_POLICY if docs else PAGE_POLICY).format(nonce=nonce)
        await send({**start, "headers": self._secure(headers, policy)})
        await send({"type": "http.response.body", "body": body})

    def _secure(self, headers: list[tuple[bytes, bytes]], policy: str) -> list[tuple[bytes, bytes]]:
        kept: list[tuple[bytes, bytes]] = []
        permissions: str | None = None
        for key, value in headers:
            name = key.lower()
            if name == b"permissions-policy":
                permissions = value.decode("latin-1")  # merged with our denials below
            elif name not in self.fixed or _STRONG_ENOUGH[name](value.decode("latin-1")):
                kept.append((key, value))
        present = {key.lower() for key, _ in kept}
        kept += [(name, value) for name, value in self.fixed.items() if name not in present]
        # A route's own policy stays beside ours: the browser enforces both, so it can only narrow.
        kept.append((b"content-security-policy", policy.encode()))
        kept.append((b"permissions-policy", _permissions(permissions).encode()))
        return kept

    def _websocket_send(self, send: Send) -> Send:
        async def secured_send(message: Message) -> None:
            # The handshake's 101, or the HTTP reply that refuses it
            if message["type"] in {"websocket.accept", "websocket.http.response.start"}:
                headers = list(message.get("headers", ()))
                message = {**message, "headers": self._secure(headers, RESOURCE_POLICY)}
            await send(message)

        return secured_send


def _is_document(headers: list[tuple[bytes, bytes]], docs: bool) -> bool:
    """A page whose inline scripts get the nonce: NiceGUI's own pages, and FastAPI's Swagger UI."""
    if not (_header(headers, b"content-type") or "").lower().startswith("text/html"):
        return False
    return docs or (_header(headers, b"x-nicegui-content") or "").lower() == "page"


def _with_nonce(body: bytes, nonce: str, encoding: str | None) -> bytes:
    attribute = b'<script nonce="' + nonce.encode() + b'"'
    if encoding is None or encoding.lower() == "identity":
        return _SCRIPT_TAG.sub(attribute, body)
    if encoding.lower() == "gzip":  # NiceGUI's GZipMiddleware sits inside this layer
        return gzip.compress(_SCRIPT_TAG.sub(attribute, gzip.decompress(body)), compresslevel=6)
    logger.error("page sent with Content-Encoding {}: its inline scripts get no nonce", encoding)
    return body


def _permissions(existing: str | None) -> str:
    """Our denials, plus whatever else a route's own Permissions-Policy says about other features."""
    if not existing:
        return PERMISSIONS_POLICY
    others = [
        item.strip()
        for item in existing.split(",")
        if item.strip() and item.split("=", 1)[0].strip().lower() not in DENIED_FEATURES
    ]
    return ", ".join([PERMISSIONS_POLICY, *others])


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
