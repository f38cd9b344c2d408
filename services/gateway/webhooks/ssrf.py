"""SSRF guard: webhook endpoints may only reach public internet addresses.

Checked twice: when an endpoint is registered (`check_url`, a 422 answer) and again on
every new connection at delivery time (`GuardedConnector`), because DNS can change
after registration. The delivery check runs inside the connection itself: the host is
resolved once, every address is vetted, and the socket connects to a vetted address, so
there is no window between the check and the connect (DNS rebinding). TLS still verifies
the certificate against the host name. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# IANA special-purpose blocks that are not globally reachable, listed here so the verdict
# does not depend on the Python version's ipaddress tables.
_SPECIAL_PURPOSE = tuple(
    ipaddress.ip_network(block)
    for block in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)


class UnsafeUrl(ValueError):
    """The URL is not an allowed webhook destination (the message says why)."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a destination address is refused, or None if it is a public unicast address.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo,
    NAT64) are judged by the IPv4 address inside them.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"embeds {embedded}, which {inner}" if inner else None
        if address in _NAT64_LOCAL_USE:
            return "is a local-use NAT64 address"
        if address.is_site_local:
            return "is a site-local address"
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_multicast:
        return "is a multicast address"
    if address in _SHARED_ADDRESS_SPACE:
        return "is a carrier-grade NAT (shared) address"
    if address.is_private:
        return "is a private address"
    if any(address in block for block in _SPECIAL_PURPOSE if block.version == address.version):
        return "is in a special-purpose block"
    if address.is_reserved:
        return "is a reserved address"
    if not address.is_global:
        return "is not a globally routable address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        server, client = address.teredo
        # Either end being non-public makes the tunnel a way in; judge the client end first.
        return client if forbidden_reason(client) else server
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_address(host: str) -> IPAddress | None:
    """The IP address a host names literally (brackets and zone ids allowed), or None."""
    candidate = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def check_addresses(host: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
    """All addresses must be public: a host with one private record is refused outright."""
    vetted = list(dict.fromkeys(addresses))
    if not vetted:
        raise UnsafeUrl(f"{host} does not resolve to any address")
    for address in vetted:
        reason = forbidden_reason(address)
        if reason:
            raise UnsafeUrl(f"{host} resolves to {address}, which {reason}")
    return vetted


async def resolve(host: str, port: int) -> list[IPAddress]:
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; UnsafeUrl for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("the URL is malformed") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


async def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a non-public address."""
    _scheme, host, port = split_url(url)
    if allow_private:
        return
    check_addresses(host, await resolve(host, port))


class UnsafeDestination(OSError):
    """Raised inside a connection attempt to a refused address (httpx shows it as ConnectError)."""


class GuardedConnector(aiohttp.TCPConnector):
    """An aiohttp connector that connects only to vetted public addresses.

    Every connection starts with `_resolve_host` (IP literals and cached DNS answers
    included), and the socket connects to exactly the addresses it returns, so vetting
    them here leaves no gap between the check and the connect. TLS still verifies the
    certificate against the host name.
    """

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_private = allow_private

    async def _resolve_host(self, host: str, port: int, traces: Sequence[Any] | None = None) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)  # type: ignore[arg-type]
        if not self.allow_private:
            try:
                check_addresses(host, (ipaddress.ip_address(r["host"].split("%", 1)[0]) for r in results))
            except UnsafeUrl as exc:
                raise UnsafeDestination(errno.EACCES, str(exc)) from exc
        return results
