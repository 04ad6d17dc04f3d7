"""Simulated live dashboards, in a process of their own (`python -m bench.simclient`).

Each one does what a browser tab does on the wire (nicegui/static/nicegui.js, `createApp`):
GET / with the session cookie, read the socket query NiceGUI embeds in the page (client_id,
next_message_id, implicit_handshake), connect Socket.IO over a websocket at /_nicegui_ws/socket.io
with that query plus document_id/tab_id/old_tab_id, handshake (implicitly through the query, as
the page asks, or with an explicit "handshake" emit when it does not), then keep reading every
message, acknowledge them every 3 s ("ack") and answer run_javascript requests that carry a
request_id. Each `noxAppend({chart_id: [ts_ms, ...]}, window)` message gives one latency:
receive time minus the sample's timestamp.

Protocol with the harness (JSON lines): first line on stdin is the config
{"base", "sessions": [...], "count"}; the helper answers {"event": "ready", ...} once every client
received its first chart update; then "measure" resets the counters and "stop" makes it report
{"event": "result", ...}, disconnect everyone and exit.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import socketio
from yarl import URL

from bench.util import percentile, run_child

SOCKET_PATH = "/_nicegui_ws/socket.io"
QUERY_RE = re.compile(r"query: (\{[^\n]*\}),\s*\n")
APPEND_PREFIX = "noxAppend("
ACK_EVERY = 3.0


def js_query_value(value: Any) -> str:
    """socket.io-client sends each query value as encodeURIComponent(String(value))."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SimClient:
    def __init__(self, base: str, session: str) -> None:
        self.base = base
        self.session = session
        self.latencies: list[float] = []
        self.messages = 0
        self.bytes = 0
        self.first_append = asyncio.Event()
        self.next_message_id = 0
        self.acked = -1
        self.client_id = ""
        self.error = ""
        self.http: aiohttp.ClientSession | None = None
        self.sio: socketio.AsyncClient | None = None
        self._ack_task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.latencies, self.messages, self.bytes = [], 0, 0

    async def open(self) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies for an IP-address host
        jar.update_cookies({"nox_session": self.session}, URL(self.base))
        self.http = aiohttp.ClientSession(cookie_jar=jar)
        async with self.http.get(f"{self.base}/", allow_redirects=False) as response:
            html = await response.text()
            if response.status != 200:
                raise RuntimeError(f"GET / answered {response.status} {response.headers.get('location', '')}")
        match = QUERY_RE.search(html)
        if match is None:
            raise RuntimeError("no socket query in the page")
        page_query: dict[str, Any] = ast.literal_eval(match.group(1))
        self.client_id = str(page_query["client_id"])
        self.next_message_id = int(page_query.get("next_message_id", 0))
        query = {
            **page_query,
            "document_id": str(uuid.uuid4()),
            "tab_id": str(uuid.uuid4()),
            "old_tab_id": None,
        }
        encoded = {key: js_query_value(value) for key, value in query.items()}
        # The browser sends its cookies (the NiceGUI browser-id cookie set by GET / too) with the upgrade.
        cookies = "; ".join(f"{m.key}={m.value}" for m in jar.filter_cookies(URL(self.base)).values())
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("*", self._on_message)
        await self.sio.connect(
            f"{self.base}/?{urlencode(encoded)}",
            headers={"Cookie": cookies},
            transports=["websocket"],
            socketio_path=SOCKET_PATH,
            wait_timeout=20,
        )
        if not page_query.get("implicit_handshake"):
            ok = await self.sio.call("handshake", query, timeout=20)
            if not ok:
                raise RuntimeError("handshake refused")
        self._ack_task = asyncio.get_running_loop().create_task(self._ack_loop())

    def _on_message(self, event: str, *args: Any) -> None:
        received_ms = time.time() * 1000.0
        self.messages += 1
        data = args[0] if args else None
        if isinstance(data, dict):
            message_id = data.get("_id")
            if isinstance(message_id, int) and message_id >= self.next_message_id:
                self.next_message_id = message_id + 1
        with contextlib.suppress(TypeError, ValueError):
            self.bytes += len(json.dumps(args, separators=(",", ":")))
        if event != "run_javascript" or not isinstance(data, dict):
            return
        code = str(data.get("code", ""))
        if code.startswith(APPEND_PREFIX):
            try:
                updates = json.loads(code[len(APPEND_PREFIX) : code.rindex(",")])
                ts_ms = min(float(point[0]) for point in updates.values())
            except (ValueError, TypeError, IndexError):
                ts_ms = float("nan")
            if ts_ms == ts_ms:
                self.latencies.append(received_ms - ts_ms)
                self.first_append.set()
        if data.get("request_id") and self.sio is not None:
            reply = {"request_id": data["request_id"], "client_id": self.client_id, "result": None}
            asyncio.get_running_loop().create_task(self.sio.emit("javascript_response", reply))

    async def _ack_loop(self) -> None:
        while True:
            await asyncio.sleep(ACK_EVERY)
            if self.sio is not None and self.sio.connected and self.acked < self.next_message_id:
                await self.sio.emit(
                    "ack", {"client_id": self.client_id, "next_message_id": self.next_message_id}
                )
                self.acked = self.next_message_id

    async def close(self) -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
        if self.sio is not None:
            with contextlib.suppress(Exception):  # tearing down: whatever state the socket is in
                await asyncio.wait_for(self.sio.disconnect(), 10)
        if self.http is not None:
            await self.http.close()


async def _stdin_lines(loop: asyncio.AbstractEventLoop) -> str:
    return await loop.run_in_executor(None, sys.stdin.readline)


async def main_async(config: dict[str, Any], emit: Any) -> None:
    base = str(config["base"])
    sessions = list(config["sessions"])
    count = int(config["count"])
    parallel = int(config.get("parallel", 8))
    clients = [SimClient(base, sessions[i % len(sessions)]) for i in range(count)]
    gate = asyncio.Semaphore(parallel)
    failures: list[str] = []
    started = time.monotonic()

    async def open_one(client: SimClient) -> None:
        async with gate:
            try:
                await client.open()
            except Exception as exc:  # counted and reported, not fatal for the others
                client.error = f"{type(exc).__name__}: {exc}"
                failures.append(client.error)

    await asyncio.gather(*(open_one(c) for c in clients))
    live = [c for c in clients if not c.error]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.first_append.wait() for c in live)), 30)
    except TimeoutError:
        failures.append("some clients got no chart update within 30 s")
    emit(
        "ready",
        connected=len(live),
        failed=len(failures),
        errors=failures[:5],
        connect_seconds=time.monotonic() - started,
    )
    loop = asyncio.get_running_loop()
    window_started = time.monotonic()
    while True:
        line = await _stdin_lines(loop)
        command = json.loads(line).get("cmd") if line.strip() else "stop"
        if command == "measure":
            for client in live:
                client.reset()
            window_started = time.monotonic()
        elif command == "stop":
            break
    elapsed = max(1e-9, time.monotonic() - window_started)
    latencies = [value for c in live for value in c.latencies]
    per_client = [len(c.latencies) / elapsed for c in live]
    result = {
        "clients": len(live),
        "failed": len(failures),
        "seconds": elapsed,
        "updates": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies) if latencies else float("nan"),
        "updates_per_client_per_s": sum(per_client) / len(per_client) if per_client else 0.0,
        "messages_per_client_per_s": sum(c.messages for c in live) / max(1, len(live)) / elapsed,
        "bytes_per_client_per_s": sum(c.bytes for c in live) / max(1, len(live)) / elapsed,
        "disconnected": sum(1 for c in live if c.sio is None or not c.sio.connected),
    }
    emit("result", **result)
    await asyncio.gather(*(c.close() for c in clients))


def main() -> None:
    run_child(main_async)


if __name__ == "__main__":
    main()
