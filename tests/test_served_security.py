"""Against a real `nox-ui serve` (uvicorn in front, as users run it): forwarded headers from loopback
are not believed, and a huge request body is refused without being read into memory."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.test_browser import PROJECT_ROOT, _free_port, _wait_until_serving, start_serve, stop_serve

PASSWORD = "served-security-admin-1"
NOX_UI = [sys.executable, "-m", "nox_ui"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    root = tmp_path_factory.mktemp("nox-served")
    data_dir = root / "data"
    subprocess.run(
        [
            *NOX_UI,
            "--data-dir",
            str(data_dir),
            "users",
            "create",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input=PASSWORD.encode(),
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = root / "server.log"
    process = start_serve(data_dir, port, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_serving(process, log, base_url, setup_url=False)
        yield base_url, process
    finally:
        stop_serve(process)


def test_forwarded_for_from_loopback_does_not_escape_the_throttle(served: tuple[str, object]) -> None:
    """uvicorn alone would believe X-Forwarded-For from 127.0.0.1: 15 failures, each claiming a new
    address, were never throttled. With no trusted proxy configured they all count as 127.0.0.1."""
    base_url, _ = served
    codes = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for n in range(15):
            response = client.post(
                "/api/v1/auth/token",
                json={"username": "someone", "password": "wrong password"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            codes.append(response.status_code)
    assert codes == [401] * 10 + [429] * 5


def test_a_150_mib_body_is_refused_without_being_read(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    base_url, process = served
    server = psutil.Process(process.pid)
    before = server.memory_info().rss

    def body() -> Iterator[bytes]:
        chunk = b" " * (1024 * 1024)
        for _ in range(150):
            yield chunk

    with httpx.Client(base_url=base_url, timeout=60) as client:
        try:
            response = client.post(
                "/api/v1/auth/token", content=body(), headers={"content-type": "application/json"}
            )
            status = response.status_code
        except httpx.TransportError:
            status = 413  # the server answered and closed while the client was still sending
    # Declared up front: the answer comes before a single byte of the body is sent.
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: nox\r\nContent-Type: application/json\r\n"
            b"Content-Length: 157286400\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):  # the server closes after its answer (Connection: close)
            received += chunk
        answer = received.decode("latin-1")
    assert status == 413
    assert answer.startswith("HTTP/1.1 413 ")
    assert "request body too large" in answer
    # Before this limit the same request took the server from ~110 to ~534 MiB.
    assert server.memory_info().rss - before < 40 * 1024 * 1024
