"""The one way out: every outbound request of the panel goes through `OutboundGuard` (webhooks and
apprise now; OIDC discovery and node_exporter scrapes later), so a user-supplied URL cannot reach the
panel's own host, the cloud metadata service or the internal network (server-side request forgery).

By default the guard refuses unspecified, loopback, link-local, private (RFC 1918, fc00::/7), shared
(100.64.0.0/10, carrier-grade NAT), multicast and reserved addresses, IPv4 and IPv6 alike, including
IPv4 embedded in IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::/96`, 6to4). The admin setting
`notify_allowed_hosts` (exact host names or CIDRs, comma-separated) opens chosen internal targets: a
listed host name may resolve to anything, a listed address or range is allowed whatever name led there.

The check happens where the connection is made, on the addresses actually connected to:

- `async_client()` / `client()`: httpx clients whose connection pool uses `GuardedBackend`. The pool
  asks it to connect to `(host, port)`; it resolves the host once and connects only to the
  addresses that passed (none passed: refused). DNS rebinding has no second lookup to win,
  TLS still verifies the certificate against the host name (SNI) and the Host header stays the URL's.
  A redirect opens a new connection, so every hop is checked the same way; the clients do not read
  proxies from the environment (a proxy would resolve the name itself, after the check).
- `guard_urllib3()`: apprise sends through `requests`/urllib3 on its own. While the context is active
  (a context variable, so apprise's worker threads inherit it), urllib3's connection factory resolves
  through the guard and connects to the checked addresses only; outside it urllib3 is untouched.
  Non-HTTP apprise plugins (SMTP, MQTT, syslog, XMPP) open their own sockets: for them only the
  check before sending (`check_host`) applies, and a name that changes its answer between that
  check and the plugin's own lookup is not caught.

A refusal is `OutboundRefused`, whose message says what was refused and where an admin allows it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpcore
    import httpx

SETTING = "notify_allowed_hosts"
ALLOW_HINT = f"an admin can allow it in Settings → Security → {SETTING}"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses to connect to, in order; raises OSError when the name does not resolve.
Resolver = Callable[[str, int], list[str]]


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Checked in this order (so ::1 reads as loopback, not as a part of the reserved ::/96).
_REFUSED: tuple[tuple[str, str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", "an unspecified address", _networks("0.0.0.0/32", "::/128")),
    ("loopback", "a loopback address", _networks("127.0.0.0/8", "::1/128")),
    ("link-local", "a link-local address", _networks("169.254.0.0/16", "fe80::/10")),
    (
        "private",
        "a private address",
        _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10", "64:ff9b:1::/48"),
    ),
    ("shared", "a shared (carrier-grade NAT) address", _networks("100.64.0.0/10")),
    ("multicast", "a multicast address", _networks("224.0.0.0/4", "ff00::/8")),
    (
        "reserved",
        "a reserved address",
        _networks(
            "0.0.0.0/8",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "::/96",
            "100::/64",
            "2001:db8::/32",
        ),
    ),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*$")


class OutboundRefused(Exception):
    """A target the guard refuses. `reason` is the category (`loopback`, `private`, ...), `detail` what
    was refused, and the message adds where an admin can allow it."""

    def __init__(self, host: str, reason: str, detail: str) -> None:
        super().__init__(f"refused: {detail}; {ALLOW_HINT}")
        self.host = host
        self.reason = reason
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64 or 6to4), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> tuple[str, str] | None:
    """(category, description) of an address refused by default, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return classify(inner)
    for category, words, networks in _REFUSED:
        if any(address.version == net.version and address in net for net in networks):
            return category, words
    if not address.is_global:  # anything else the IANA registries list as not globally reachable
        return "reserved", "a reserved address"
    return None


def parse_address(host: str) -> IPAddress | None:
    """`host` as an IP address (brackets and an IPv6 zone allowed), or None when it is a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The forms the C resolver reads as IPv4 without DNS: `127.1`, `0x7f000001`, `2130706433`."""
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", host) or not re.match(r"^[0-9]", host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def normalize_host(host: str) -> str:
    """A host name as compared: lower case, no trailing dot, IDNA (ASCII) form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass(frozen=True)
class AllowList:
    """What `notify_allowed_hosts` opens: exact host names and address ranges."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows_host(self, host: str) -> bool:
        return normalize_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            inner = embedded_ipv4(address)
            if inner is not None:
                candidates.append(inner)
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def parse_allowed_hosts(text: str) -> AllowList:
    """`notify_allowed_hosts` parsed; ValueError naming the first malformed entry."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in _entries(text):
        address = parse_address(entry)
        if address is not None:
            networks.append(ipaddress.ip_network(address))
            continue
        base, slash, _bits = entry.partition("/")
        if slash and parse_address(base) is not None:
            try:
                networks.append(ipaddress.ip_network(entry.replace("[", "").replace("]", ""), strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not a CIDR range such as 10.0.0.0/24 or fd00::/8") from None
            continue
        name = normalize_host(entry)
        if slash or re.fullmatch(r"[0-9.]+", name) or not _HOST_NAME_RE.match(name):
            raise ValueError(
                f"{entry!r} is not a host name, an IP address or a CIDR range such as 10.0.0.0/24 "
                "(give each without a scheme, port, path or wildcard, separated by commas)"
            )
        hosts.add(name)
    return AllowList(frozenset(hosts), tuple(networks))


def normalize_allowed_hosts(text: str) -> str:
    """The setting as stored: validated, entries separated by `, `."""
    parse_allowed_hosts(text)
    return ", ".join(dict.fromkeys(_entries(text)))


def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the operating system's resolver), without duplicates."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class OutboundGuard:
    """Decides which targets the panel may connect to, and makes the clients that only connect there.

    `allowed` is the current `notify_allowed_hosts` (a callable, read at each check, so a change applies
    at once); `resolve` is the name resolver (tests give one that knows extra names)."""

    def __init__(self, allowed: Callable[[], str] | str = "", *, resolve: Resolver | None = None) -> None:
        self._allowed = allowed if callable(allowed) else (lambda: allowed)
        self.resolve: Resolver = resolve or system_resolve
        self._parsed: tuple[str, AllowList] = ("", AllowList())

    def allow_list(self) -> AllowList:
        text = self._allowed()
        cached_text, cached = self._parsed
        if text == cached_text:
            return cached
        try:
            parsed = parse_allowed_hosts(text)
        except ValueError:  # the settings validator refuses these; a stale stored value opens nothing
            parsed = AllowList()
        self._parsed = (text, parsed)
        return parsed

    def _refusal(
        self, host: str, address: IPAddress, allow: AllowList, *, named: bool
    ) -> OutboundRefused | None:
        verdict = classify(address)
        if verdict is None or allow.allows_address(address):
            return None
        category, words = verdict
        detail = f"{host} resolves to {words}" if named else f"{host} is {words}"
        return OutboundRefused(host, category, detail)

    def literal_refusal(self, host: str, *, legacy_ipv4: bool = True) -> OutboundRefused | None:
        """The refusal of a target that is internal as written, without asking DNS: an IP literal (with
        `legacy_ipv4`, also `127.1`-style forms), `localhost` or a name under `.localhost`. Used when a
        notifier is saved; names are resolved and checked when something is sent."""
        name = normalize_host(host)
        allow = self.allow_list()
        if allow.allows_host(name):
            return None
        if name == "localhost" or name.endswith(".localhost"):
            loopback = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
            if any(allow.allows_address(address) for address in loopback):
                return None
            return OutboundRefused(host, "loopback", f"{name} is a loopback name")
        address = parse_address(name) or (_legacy_ipv4(name) if legacy_ipv4 else None)
        if address is None:
            return None
        return self._refusal(name, address, allow, named=False)

    def resolve_allowed(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`: those it resolves to that pass the check, in the
        resolver's order. Raises `OutboundRefused` when none passes, OSError when it does not resolve."""
        name = normalize_host(host)
        allow = self.allow_list()
        address = parse_address(name)
        if address is not None:
            refusal = self._refusal(name, address, allow, named=False)
            if refusal is not None:
                raise refusal
            return [str(address)]
        addresses = self.resolve(name, port)
        if not addresses:
            raise OSError(f"{name} resolves to no address")
        if allow.allows_host(name):
            return addresses
        passed: list[str] = []
        first_refusal: OutboundRefused | None = None
        for found in addresses:
            parsed = parse_address(found)
            if parsed is None:
                continue
            refusal = self._refusal(name, parsed, allow, named=True)
            if refusal is None:
                passed.append(str(parsed))
            elif first_refusal is None:
                first_refusal = refusal
        if passed:
            return passed
        raise first_refusal or OSError(f"{name} resolves to no address")

    def check_host(self, host: str, port: int = 0) -> None:
        """Before handing a target to code that connects by itself (apprise's non-HTTP plugins): refuse
        it if it resolves to a refused address. A name that does not resolve is let through (the
        connection will fail on its own)."""
        with contextlib.suppress(OSError):
            self.resolve_allowed(host, port)

    # -- clients -----------------------------------------------------------------------------------

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` that connects only where the guard allows (kwargs go to the client;
        `follow_redirects=True` is safe: each hop is checked at its connection)."""
        import httpx

        return httpx.AsyncClient(transport=_async_transport(self), trust_env=False, **kwargs)

    def client(self, **kwargs: Any) -> httpx.Client:
        """The blocking counterpart of `async_client`."""
        import httpx

        return httpx.Client(transport=_sync_transport(self), trust_env=False, **kwargs)

    def guard_urllib3(self) -> contextlib.AbstractContextManager[GuardScope]:
        """While active, urllib3 (and so `requests` and apprise) connects only where the guard allows;
        the scope collects the refusals so the caller can report them."""
        return _guarding(self)


# -- httpx / httpcore ------------------------------------------------------------------------------

# httpx's own defaults (`httpx._config.DEFAULT_LIMITS`)
_POOL_LIMITS: dict[str, Any] = {
    "max_connections": 100,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}


def _async_transport(guard: OutboundGuard) -> httpx.AsyncHTTPTransport:
    import httpcore
    import httpx

    class GuardedBackend(httpcore.AsyncNetworkBackend):
        """Resolves through the guard and connects only to the checked addresses."""

        def __init__(self) -> None:
            self.inner = httpcore.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            import anyio

            try:
                with anyio.fail_after(timeout):
                    addresses = await anyio.to_thread.run_sync(guard.resolve_allowed, host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            last: Exception | None = None
            for address in addresses:
                try:
                    return await self.inner.connect_tcp(
                        address,
                        port,
                        timeout=timeout,
                        local_address=local_address,
                        socket_options=socket_options,
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        async def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.AsyncNetworkStream:
            raise httpcore.ConnectError("the outbound guard connects over TCP only")

        async def sleep(self, seconds: float) -> None:
            await self.inner.sleep(seconds)

    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend of its own; its pool is rebuilt with one (the same settings).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(), **_POOL_LIMITS
    )
    return transport


def _sync_transport(guard: OutboundGuard) -> httpx.HTTPTransport:
    import httpcore
    import httpx

    class GuardedSyncBackend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self.inner = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            try:
                addresses = guard.resolve_allowed(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            last: Exception | None = None
            for address in addresses:
                try:
                    return self.inner.connect_tcp(
                        address,
                        port,
                        timeout=timeout,
                        local_address=local_address,
                        socket_options=socket_options,
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.NetworkStream:
            raise httpcore.ConnectError("the outbound guard connects over TCP only")

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=GuardedSyncBackend(), **_POOL_LIMITS
    )
    return transport


# -- urllib3 (apprise) -----------------------------------------------------------------------------


@dataclass
class GuardScope:
    """One guarded stretch of urllib3 use: the guard, and the refusals it made."""

    guard: OutboundGuard
    refusals: list[OutboundRefused] = field(default_factory=list)


_SCOPE: contextvars.ContextVar[GuardScope | None] = contextvars.ContextVar("nox_outbound_scope", default=None)
_INSTALL_LOCK = threading.Lock()


def _install_urllib3_hook() -> None:
    """Wrap urllib3's connection factory once; the wrapper only acts inside a `guard_urllib3` scope."""
    from urllib3.util import connection

    with _INSTALL_LOCK:
        original = connection.create_connection
        if getattr(original, "_nox_guarded", False):
            return

        def guarded_create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            scope = _SCOPE.get()
            if scope is None:
                return original(address, *args, **kwargs)
            host, port = address
            try:
                addresses = scope.guard.resolve_allowed(host, port)
            except OutboundRefused as refused:
                scope.refusals.append(refused)
                raise
            last: OSError | None = None
            for resolved in addresses:
                try:
                    return original((resolved, port), *args, **kwargs)
                except OSError as exc:
                    last = exc
            assert last is not None
            raise last

        guarded_create_connection._nox_guarded = True  # type: ignore[attr-defined]
        connection.create_connection = guarded_create_connection


@contextlib.contextmanager
def _guarding(guard: OutboundGuard) -> Iterator[GuardScope]:
    _install_urllib3_hook()
    scope = GuardScope(guard)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
