"""Where an address is, and connections that cannot leave the home under local-only mode.

An engine that talks to a server resolves it once with :func:`resolve_endpoint`, then connects
with :func:`open_connection_checked`, which refuses a CLOUD endpoint under local-only *before a
socket exists* and otherwise connects to the exact IP addresses that were checked (never to the
hostname again), so a DNS answer cannot change between the check and the connect.

Classification uses explicit tables, not :attr:`ipaddress.IPv4Address.is_private` (which also
calls documentation and benchmark ranges such as 198.51.100.0/24 "private").
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from ..engines import Locality
from .policy import Policy

LOOPBACK_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
#: Home-network ranges. 100.64.0.0/10 (carrier-grade NAT, also Tailscale) is deliberately NOT
#: here: those addresses belong to the ISP's or an overlay network that may span the internet.
LAN_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fc00::/7"),  # IPv6 unique-local
)

ADDRESS_CLASSES = ("none", "loopback", "lan", "public")
"""Address classes from least to most exposed ("none": nothing left the process)."""


def address_class(ip: str) -> str:
    """``"loopback"``, ``"lan"`` or ``"public"`` for an IP literal; malformed → ``"public"``."""
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return "public"  # fail closed
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            addr = ipaddress.IPv6Address(text.split("%", 1)[0])
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
    if any(addr in net for net in LOOPBACK_NETWORKS):
        return "loopback"
    if any(addr in net for net in LAN_NETWORKS):
        return "lan"
    return "public"


def locality_of_class(address_class_name: str) -> Locality:
    """The engine locality an address class means: ``"none"`` IN_PROCESS, ``"loopback"`` and
    ``"lan"`` LAN, anything else (``"public"``, unknown names) CLOUD."""
    if address_class_name == "none":
        return Locality.IN_PROCESS
    if address_class_name in ("loopback", "lan"):
        return Locality.LAN
    return Locality.CLOUD


def classify_address(ip: str) -> Locality:
    """LAN for loopback, private, link-local and unique-local addresses; CLOUD otherwise.

    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are judged by their IPv4 address, a
    ``%zone`` suffix and ``[brackets]`` are accepted, and anything malformed is CLOUD.
    """
    return Locality.CLOUD if address_class(ip) == "public" else Locality.LAN


def worst_address_class(*classes: str) -> str:
    """The most exposed of `classes` (unknown names count as ``"public"``)."""
    worst = "none"
    for name in classes:
        rank = ADDRESS_CLASSES.index(name) if name in ADDRESS_CLASSES else len(ADDRESS_CLASSES) - 1
        worst = ADDRESS_CLASSES[max(rank, ADDRESS_CLASSES.index(worst))]
    return worst


@dataclass(frozen=True)
class CheckedEndpoint:
    """A server after one resolution: its addresses and where they are."""

    host: str
    port: int
    addresses: tuple[str, ...]
    locality: Locality
    address_class: str  # "loopback" | "lan" | "public"

    @classmethod
    def from_addresses(cls, host: str, port: int, addresses: tuple[str, ...]) -> CheckedEndpoint:
        """Build an endpoint from already-resolved IP literals (if ANY is non-local: CLOUD)."""
        classes = [address_class(a) for a in addresses] or ["public"]
        cls_name = worst_address_class(*classes)
        locality = Locality.CLOUD if cls_name == "public" else Locality.LAN
        return cls(host, port, addresses, locality, cls_name)


class CloudRefused(Exception):
    """A connection was refused because it would leave the home network under local-only."""

    def __init__(self, engine: str, host: str, reason: str = "local_only") -> None:
        target = repr(host) if host else "a public address"
        super().__init__(
            f"engine {engine!r}: refused to connect to {target} ({reason}): the address is not on"
            " the home network and local-only mode is on"
        )
        self.engine = engine
        self.host = host
        self.reason = reason


#: One getaddrinfo answer: (family, type, proto, canonname, sockaddr).
type _AddrInfo = tuple[int, int, int, str, tuple[object, ...]]


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port!r}")


def _ip_addresses(host: str, infos: Sequence[_AddrInfo]) -> tuple[str, ...]:
    """The distinct IPv4/IPv6 literals of a getaddrinfo answer, in order (OSError if none)."""
    addresses: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = str(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OSError(f"{host!r} has no IPv4 or IPv6 address")
    return tuple(addresses)


async def resolve_endpoint(host: str, port: int) -> CheckedEndpoint:
    """Resolve `host` once (off the event loop) and classify every address it has.

    If ANY address is non-local the endpoint is CLOUD. Resolution errors (``socket.gaierror``,
    an OSError) are raised unchanged.
    """
    _check_port(port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return CheckedEndpoint.from_addresses(host, port, _ip_addresses(host, infos))


def effective_address_class(endpoint: CheckedEndpoint) -> str:
    """The endpoint's address class re-checked against its declared locality and every one
    of its addresses (the most exposed wins; no address, or a declared locality other than
    LAN/IN_PROCESS, is ``"public"``)."""
    if not endpoint.addresses:
        return "public"
    if endpoint.locality != Locality.LAN and endpoint.locality != Locality.IN_PROCESS:
        return "public"
    classes = (address_class(a) for a in endpoint.addresses)
    return worst_address_class("loopback", endpoint.address_class, *classes)


def _effective_locality(endpoint: CheckedEndpoint) -> Locality:
    """The endpoint's declared locality, re-checked against its addresses (worst wins)."""
    return locality_of_class(effective_address_class(endpoint))


async def open_connection_checked(
    endpoint: CheckedEndpoint, policy: Policy, engine: str, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection to `endpoint` if `policy` allows its locality.

    Raises :class:`CloudRefused` before any socket is created when the endpoint (or any of
    its addresses, re-checked here) is CLOUD and the policy is local-only. Otherwise tries the
    checked IP addresses in order (numeric only, no DNS) within `timeout` seconds overall and
    raises the last OSError (or TimeoutError) if none answers.
    """
    locality = _effective_locality(endpoint)
    if not policy.allows(locality):
        raise CloudRefused(engine, endpoint.host, "local_only")
    if not endpoint.addresses:
        raise OSError(f"engine {engine!r}: {endpoint.host!r} has no checked address")
    last_error: BaseException | None = None
    async with asyncio.timeout(timeout):
        for ip in endpoint.addresses:
            try:
                return await asyncio.open_connection(
                    ip, endpoint.port, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
                )
            except OSError as err:
                last_error = err
    assert last_error is not None
    raise last_error
