"""The outbound guard (nox_ui/outbound.py) against real servers on loopback: which addresses it refuses,
the `notify_allowed_hosts` setting that opens them, and its clients refusing before any connection is
made (the receiver sees nothing), on redirects too, and for urllib3 (apprise's HTTP client).

No test here connects anywhere but 127.0.0.1: addresses outside loopback are only classified, never
dialled, and test host names are resolved by a resolver the test hands to the guard."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from nox_ui.app import Services
from nox_ui.outbound import OutboundGuard, OutboundRefused, classify, parse_allowed_hosts
from nox_ui.roles import PANEL
from nox_ui.services.settings import InvalidSettings
from tests.receivers import LOOPBACK, HttpReceiver

NAME = "hooks.internal.test"  # known only to the tests' resolver


class Redirector:
    """An HTTP server on loopback that answers every request with a redirect to `location`."""

    def __init__(self, location: str, status: int = 302) -> None:
        self.hits = 0
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                redirector.hits += 1
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="redirector", daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def __enter__(self) -> Redirector:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class TestResolver:
    """Answers for the test names, and the system's answer for the rest; counts the lookups."""

    __test__ = False

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host in self.answers:
            queue = self.answers[host]
            return queue.pop(0) if len(queue) > 1 else queue[0]
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in found))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


# -- which addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
    ],
)
def test_internal_addresses_are_refused_by_default(address: str, category: str) -> None:
    verdict = classify(ipaddress.ip_address(address))
    assert verdict is not None and verdict[0] == category
    with pytest.raises(OutboundRefused) as refused:
        OutboundGuard().resolve_allowed(address, 80)
    assert refused.value.reason == category
    assert "notify_allowed_hosts" in str(refused.value)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None
    assert OutboundGuard().resolve_allowed(address, 443) == [str(ipaddress.ip_address(address))]


def test_a_refusal_reads_as_what_and_where_to_allow_it() -> None:
    with pytest.raises(OutboundRefused) as refused:
        OutboundGuard().resolve_allowed("127.0.0.1", 80)
    assert str(refused.value) == (
        "refused: 127.0.0.1 is a loopback address; an admin can allow it in "
        "Settings → Security → notify_allowed_hosts"
    )


def test_written_forms_of_loopback_are_refused_without_dns() -> None:
    guard = OutboundGuard()
    for host in ("localhost", "LOCALHOST.", "api.localhost", "127.1", "0x7f000001", "2130706433", "[::1]"):
        refused = guard.literal_refusal(host)
        assert refused is not None and refused.reason == "loopback", host
    assert guard.literal_refusal("hooks.example.org") is None  # names wait for their resolution
    assert guard.literal_refusal("1234567890", legacy_ipv4=False) is None  # an id, for apprise


def test_the_allow_list_opens_listed_hosts_and_ranges_only() -> None:
    resolver = TestResolver({NAME: [["10.1.2.3"]], "other.internal.test": [["10.1.2.3"]]})
    guard = OutboundGuard(f"{NAME}, 192.168.0.0/16, 127.0.0.1", resolve=resolver)
    assert guard.resolve_allowed(NAME, 80) == ["10.1.2.3"]  # a listed name, wherever it points
    with pytest.raises(OutboundRefused, match=r"other\.internal\.test resolves to a private address"):
        guard.resolve_allowed("other.internal.test", 80)
    assert guard.resolve_allowed("192.168.7.7", 80) == ["192.168.7.7"]
    assert guard.resolve_allowed("::ffff:127.0.0.1", 80) == ["::ffff:7f00:1"]  # the same address
    with pytest.raises(OutboundRefused):
        guard.resolve_allowed("127.0.0.2", 80)
    assert guard.literal_refusal("localhost") is None  # localhost is 127.0.0.1, which is listed


def test_the_setting_refuses_malformed_entries_with_a_readable_message(services: Services) -> None:
    for bad, expected in (
        ("http://hooks.lan", "'http://hooks.lan' is not a host name, an IP address or a CIDR range"),
        ("*.lan", "'*.lan' is not a host name"),
        ("hooks.lan:8080", "'hooks.lan:8080' is not a host name"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not a CIDR range"),
        ("10.0.0", "'10.0.0' is not a host name"),
    ):
        with pytest.raises(InvalidSettings) as caught:
            services.settings.update(PANEL, {"notify_allowed_hosts": f"hooks.lan, {bad}"})
        assert expected in caught.value.errors["notify_allowed_hosts"], bad
    assert services.settings.current.notify_allowed_hosts == ""
    services.settings.update(PANEL, {"notify_allowed_hosts": " hooks.lan,10.0.0.0/24 ,, [fd00::1] "})
    assert services.settings.current.notify_allowed_hosts == "hooks.lan, 10.0.0.0/24, [fd00::1]"
    parsed = parse_allowed_hosts(services.settings.current.notify_allowed_hosts)
    assert parsed.hosts == {"hooks.lan"} and len(parsed.networks) == 2


# -- the httpx clients --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]", "127.1"])
async def test_the_client_refuses_loopback_before_connecting(receiver: HttpReceiver, host: str) -> None:
    async with OutboundGuard().async_client(timeout=5) as client:
        with pytest.raises(OutboundRefused) as refused:
            await client.post(f"http://{host}:{receiver.port}/hook", content=b"{}")
    assert refused.value.reason == "loopback"
    assert receiver.requests == []


async def test_the_allow_list_lets_the_client_through_and_applies_at_once(receiver: HttpReceiver) -> None:
    allowed = {"value": "127.0.0.1"}
    guard = OutboundGuard(lambda: allowed["value"])
    async with guard.async_client(timeout=5) as client:
        answer = await client.post(receiver.url("/hook"), content=b"{}")
        assert answer.status_code == 200
        allowed["value"] = ""
        with pytest.raises(OutboundRefused):
            await client.post(f"http://localhost:{receiver.port}/again", content=b"{}")
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_a_name_resolving_to_loopback_is_refused_when_connecting(receiver: HttpReceiver) -> None:
    resolver = TestResolver({NAME: [["127.0.0.1"]]})
    async with OutboundGuard(resolve=resolver).async_client(timeout=5) as client:
        with pytest.raises(OutboundRefused, match=f"{NAME} resolves to a loopback address"):
            await client.get(f"http://{NAME}:{receiver.port}/")
    assert resolver.lookups == [NAME]
    assert receiver.requests == []


async def test_the_client_connects_to_the_address_it_checked_and_keeps_the_host_header(
    receiver: HttpReceiver,
) -> None:
    # The name's one lookup is the address connected to: no second lookup for a rebinding DNS to answer.
    resolver = TestResolver({NAME: [["127.0.0.1"], ["10.9.9.9"]]})
    async with OutboundGuard("127.0.0.1", resolve=resolver).async_client(timeout=5) as client:
        answer = await client.get(f"http://{NAME}:{receiver.port}/pinned")
    assert answer.status_code == 200
    assert resolver.lookups == [NAME]
    [request] = receiver.requests
    assert request.path == "/pinned" and request.header("Host") == f"{NAME}:{receiver.port}"


async def test_every_redirect_hop_is_checked(receiver: HttpReceiver) -> None:
    resolver = TestResolver({NAME: [["127.0.0.1"]]})
    with Redirector(f"http://127.0.0.1:{receiver.port}/inside") as redirector:
        # The redirector is reached through its allowed name; the hop to a bare 127.0.0.1 is not allowed.
        start = f"http://{NAME}:{redirector.port}/start"
        async with OutboundGuard(NAME, resolve=resolver).async_client(
            timeout=5, follow_redirects=True
        ) as client:
            with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
                await client.get(start)
        assert redirector.hits == 1
    assert receiver.requests == []


def test_the_blocking_client_is_guarded_the_same_way(receiver: HttpReceiver) -> None:
    with OutboundGuard().client(timeout=5) as client, pytest.raises(OutboundRefused):
        client.get(f"http://localhost:{receiver.port}/")
    with OutboundGuard("127.0.0.1").client(timeout=5) as client:
        assert client.get(receiver.url("/ok")).status_code == 200
    assert [r.path for r in receiver.requests] == ["/ok"]


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with OutboundGuard(resolve=nowhere).async_client(timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://nowhere.internal.test/")


# -- urllib3 (apprise's HTTP client) -------------------------------------------------------------------


def test_urllib3_is_guarded_inside_the_scope_only(receiver: HttpReceiver) -> None:
    resolver = TestResolver({NAME: [["127.0.0.1"]]})
    guard = OutboundGuard(resolve=resolver)
    with guard.guard_urllib3() as scope, pytest.raises(OutboundRefused):
        requests.get(f"http://{NAME}:{receiver.port}/", timeout=5)
    assert [r.reason for r in scope.refusals] == ["loopback"]
    assert receiver.requests == []
    # outside a scope urllib3 is as it was
    assert requests.get(receiver.url("/plain"), timeout=5).status_code == 200
    # inside one with the address allowed, it connects to the address the guard resolved
    with OutboundGuard("127.0.0.1", resolve=resolver).guard_urllib3() as scope:
        assert requests.get(f"http://{NAME}:{receiver.port}/pinned", timeout=5).status_code == 200
    assert scope.refusals == []
    assert [r.path for r in receiver.requests] == ["/plain", "/pinned"]


def test_the_urllib3_scope_reaches_worker_threads_that_copy_the_context(receiver: HttpReceiver) -> None:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    guard = OutboundGuard()
    with guard.guard_urllib3() as scope, ThreadPoolExecutor(1) as pool:
        context = contextvars.copy_context()
        future = pool.submit(context.run, requests.get, receiver.url("/"), timeout=5)
        with pytest.raises(OutboundRefused):
            future.result()
    assert [r.reason for r in scope.refusals] == ["loopback"]
    assert receiver.requests == []


@settings(max_examples=300, derandomize=True, database=None)
@given(
    text=st.text(max_size=80) | st.lists(st.sampled_from(list("ab9.:/[]*,- \x00é")), max_size=40).map("".join)
)
def test_the_allow_list_parser_answers_any_text_with_a_list_or_a_value_error(text: str) -> None:
    try:
        parsed = parse_allowed_hosts(text)
    except ValueError as exc:
        assert "is not a" in str(exc)
        return
    for host in parsed.hosts:
        assert OutboundGuard(text).literal_refusal(host) is None  # a listed name is allowed as written
