"""ASGI layers every request passes before any route, page or the API sees it.

- `trusted_proxies_layer`: `X-Forwarded-For` / `X-Forwarded-Proto` are believed only from the addresses of
  `NOX_TRUSTED_PROXIES` (nobody's by default), so `scope["client"]`, and with it `request.client`,
  is the one client address that throttles, rate limits and the audit log all read.
- `BodyLimit`: a request body larger than `max_request_kib` gets 413 before it is read into memory:
  at once when `Content-Length` says so, or as soon as a chunked body passes the limit.

`guard_http` stacks them (and the security headers) around the whole application; `nox_ui.web`
calls it once, so NiceGUI's routes are covered as well as the API's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from nox_ui.security_headers import SecurityHeaders


def _reply(status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> list[Message]:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra or []),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class BodyLimit:
    """Refuse request bodies over `limit()` bytes with 413, without buffering them."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_all(send, _reply(400, "invalid Content-Length header"))
                return
            if int(declared) > limit:
                await _send_all(send, _too_large(limit))
                return

        received = 0
        overflow = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The route sees a disconnected client; the reply below is ours.
                    overflow = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            await _send_all(send, _too_large(limit))


def _too_large(limit: int) -> list[Message]:
    return _reply(413, f"request body too large: the limit is {limit // 1024} KiB")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1").strip())
    return None


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)


def trusted_proxies_layer(app: ASGIApp, trusted: list[str]) -> ASGIApp:
    """uvicorn's proxy-headers layer for exactly the configured proxies; none configured: no layer,
    so a forwarded header from anyone changes nothing."""
    if not trusted:
        return app
    inner: Any = app  # uvicorn types ASGI apps more narrowly than Starlette; they are the same protocol
    return cast(ASGIApp, ProxyHeadersMiddleware(inner, trusted_hosts=trusted))


def guard_http(
    app: ASGIApp, *, trusted_proxies: list[str], max_body: Callable[[], int], https: bool = False
) -> ASGIApp:
    """The layers in order: the real client address first, then the security headers (so the body
    limit's own 413 carries them too), then the body limit."""
    return trusted_proxies_layer(SecurityHeaders(BodyLimit(app, max_body), https=https), trusted_proxies)
