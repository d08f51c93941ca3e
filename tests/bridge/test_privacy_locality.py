"""Address locality and the checked connection that cannot leave the home under local-only.

An audit hook (``sys.addaudithook``) records every IP socket created and every ``socket.connect``
while a test runs, and refuses (raises) any connect to a non-loopback address, so even a wrong
implementation cannot send a packet off this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.engines import Locality
from bridge.privacy.locality import (
    CheckedEndpoint,
    CloudRefused,
    address_class,
    classify_address,
    open_connection_checked,
    resolve_endpoint,
    worst_address_class,
)
from bridge.privacy.policy import Policy

PUBLIC = "198.51.100.7"  # TEST-NET-2: classified and refused, never connected to

# -- audit hook ----------------------------------------------------------------------------

_events: list[tuple[str, tuple[Any, ...]]] = []
_state = {"active": False}


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like stay on this machine
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _state["active"] or event not in ("socket.__new__", "socket.connect"):
        return
    if event == "socket.__new__" and args[1] not in (socket.AF_INET, socket.AF_INET6, -1):
        return  # the event loop's own AF_UNIX self-pipe
    _events.append((event, args))
    if event == "socket.connect" and not _is_loopback(args[1]):
        raise PermissionError(f"test guard: refused connect to {args[1]!r}")


sys.addaudithook(_hook)


@pytest.fixture
def socket_audit() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    _events.clear()
    _state["active"] = True
    try:
        yield _events
    finally:
        _state["active"] = False


def connects(events: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    return [args[1] for event, args in events if event == "socket.connect"]


# -- classification ------------------------------------------------------------------------

CLASSIFICATION = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "lan"),
    ("10.255.255.254", "lan"),
    ("172.16.0.1", "lan"),
    ("172.31.255.254", "lan"),
    ("192.168.1.20", "lan"),
    ("169.254.10.1", "lan"),
    ("fe80::1", "lan"),
    ("fe80::1%eth0", "lan"),
    ("fd00::1", "lan"),
    ("fc00::5", "lan"),
    ("::ffff:10.0.0.1", "lan"),
    ("::ffff:192.168.0.4", "lan"),
    (PUBLIC, "public"),
    ("::ffff:198.51.100.7", "public"),
    ("8.8.8.8", "public"),
    ("2001:db8::1", "public"),
    ("2606:4700::1111", "public"),
    ("172.15.255.255", "public"),
    ("172.32.0.1", "public"),
    ("192.169.0.1", "public"),
    ("11.0.0.1", "public"),
    ("100.64.0.1", "public"),  # CGNAT / Tailscale: not the home network (docs/security.md)
    ("100.127.255.254", "public"),
    ("192.0.2.1", "public"),  # TEST-NET-1, "private" to Python's is_private
    ("203.0.113.9", "public"),
    ("64:ff9b::c633:6407", "public"),  # NAT64 of 198.51.100.7
    ("fec0::1", "public"),  # deprecated site-local
    ("0.0.0.0", "public"),
    ("::", "public"),
    ("224.0.0.1", "public"),
    ("255.255.255.255", "public"),
    ("", "public"),
    ("localhost", "public"),  # a name, not an address: fail closed
    ("10.0.0.256", "public"),
    ("10.0.0.1/8", "public"),
    ("not an ip", "public"),
    (" 10.0.0.1 ", "lan"),
]


@pytest.mark.parametrize(("ip", "expected"), CLASSIFICATION)
def test_classify_address(ip: str, expected: str) -> None:
    assert address_class(ip) == expected
    assert classify_address(ip) is (Locality.CLOUD if expected == "public" else Locality.LAN)


def test_worst_address_class() -> None:
    assert worst_address_class() == "none"
    assert worst_address_class("none", "loopback") == "loopback"
    assert worst_address_class("lan", "loopback") == "lan"
    assert worst_address_class("lan", "public", "loopback") == "public"
    assert worst_address_class("weird") == "public"


# -- resolution ----------------------------------------------------------------------------


async def test_resolve_localhost_is_lan_loopback() -> None:
    endpoint = await resolve_endpoint("localhost", 10300)
    assert endpoint.locality is Locality.LAN
    assert endpoint.address_class == "loopback"
    assert endpoint.addresses and all(address_class(a) == "loopback" for a in endpoint.addresses)
    assert endpoint.host == "localhost" and endpoint.port == 10300


async def test_resolve_public_literal_is_cloud() -> None:
    endpoint = await resolve_endpoint(PUBLIC, 443)
    assert endpoint == CheckedEndpoint(PUBLIC, 443, (PUBLIC,), Locality.CLOUD, "public")


def fake_getaddrinfo(answers: dict[str, list[str]], calls: list[str]) -> Any:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        result = []
        for ip in answers[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            result.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return result

    return getaddrinfo


async def test_resolve_any_public_address_makes_it_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    loop = asyncio.get_running_loop()
    answers = {"stt.home": ["10.0.0.5", "fd00::5", PUBLIC, "10.0.0.5"]}
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo(answers, calls))
    endpoint = await resolve_endpoint("stt.home", 10300)
    assert calls == ["stt.home"]  # resolved once, via the loop (off the event loop thread)
    assert endpoint.addresses == ("10.0.0.5", "fd00::5", PUBLIC)
    assert endpoint.locality is Locality.CLOUD
    assert endpoint.address_class == "public"


async def test_resolve_all_lan_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo({"nas": ["192.168.1.2", "::1"]}, []))
    endpoint = await resolve_endpoint("nas", 10200)
    assert (endpoint.locality, endpoint.address_class) == (Locality.LAN, "lan")


@pytest.mark.parametrize("port", [0, 65536, -1, True, "80"])
async def test_resolve_rejects_bad_ports(port: Any) -> None:
    with pytest.raises(ValueError, match="port"):
        await resolve_endpoint("localhost", port)


async def test_resolve_failure_is_an_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fail)
    with pytest.raises(OSError):
        await resolve_endpoint("nowhere.invalid", 80)


# -- checked connections ---------------------------------------------------------------------


async def test_cloud_is_refused_before_any_socket_exists(
    socket_audit: list[tuple[str, tuple[Any, ...]]],
) -> None:
    endpoint = await resolve_endpoint(PUBLIC, 443)
    socket_audit.clear()
    with pytest.raises(CloudRefused) as info:
        await open_connection_checked(endpoint, Policy(), "cloud-stt", timeout=5)
    assert socket_audit == []  # no socket.__new__, no socket.connect
    refused = info.value
    assert (refused.engine, refused.host, refused.reason) == ("cloud-stt", PUBLIC, "local_only")
    assert "cloud-stt" in str(info.value) and PUBLIC in str(info.value)


async def test_forged_lan_endpoint_with_a_public_address_is_refused(
    socket_audit: list[tuple[str, tuple[Any, ...]]],
) -> None:
    forged = CheckedEndpoint("stt.home", 10300, ("10.0.0.5", PUBLIC), Locality.LAN, "lan")
    with pytest.raises(CloudRefused):
        await open_connection_checked(forged, Policy(), "wyoming-stt", timeout=5)
    unknown = CheckedEndpoint(
        "stt.home", 10300, ("10.0.0.5",), "elsewhere", "lan"  # type: ignore[arg-type]
    )
    with pytest.raises(CloudRefused):
        await open_connection_checked(unknown, Policy(), "wyoming-stt", timeout=5)
    empty = CheckedEndpoint("stt.home", 10300, (), Locality.LAN, "lan")
    with pytest.raises(CloudRefused):
        await open_connection_checked(empty, Policy(), "wyoming-stt", timeout=5)
    assert socket_audit == []


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, int]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.2", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield "127.0.0.2", port
    finally:
        server.close()
        await server.wait_closed()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"hello\n")
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_connects_to_the_exact_checked_ip_not_the_hostname(
    echo_server: tuple[str, int],
    socket_audit: list[tuple[str, tuple[Any, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ip, port = echo_server
    calls: list[str] = []
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo({"engine.home": [ip]}, calls)
    )
    endpoint = await resolve_endpoint("engine.home", port)
    assert endpoint.locality is Locality.LAN
    # DNS now answers differently (rebinding): the connection must not ask again.
    rebound = fake_getaddrinfo({"engine.home": [PUBLIC]}, calls)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebound)
    real_getaddrinfo = socket.getaddrinfo

    def numeric_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        ipaddress.ip_address(str(host))  # raises for a name: no DNS lookups allowed here
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    socket_audit.clear()
    reader, writer = await open_connection_checked(endpoint, Policy(), "wyoming-stt", timeout=5)
    assert await roundtrip(reader, writer) == b"echo:hello\n"
    assert calls == ["engine.home"]
    assert connects(socket_audit) == [(ip, port)]
    assert "socket.__new__" in [e for e, _ in socket_audit]  # the hook does see sockets


async def test_tries_each_checked_address_in_order(
    echo_server: tuple[str, int], socket_audit: list[tuple[str, tuple[Any, ...]]]
) -> None:
    ip, port = echo_server
    endpoint = CheckedEndpoint.from_addresses("engine.home", port, ("127.0.0.3", ip))
    reader, writer = await open_connection_checked(endpoint, Policy(), "wyoming-stt", timeout=5)
    assert await roundtrip(reader, writer) == b"echo:hello\n"
    assert connects(socket_audit) == [("127.0.0.3", port), (ip, port)]


async def test_connection_errors_propagate(
    socket_audit: list[tuple[str, tuple[Any, ...]]],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    endpoint = CheckedEndpoint.from_addresses("engine.home", port, ("127.0.0.1",))
    with pytest.raises(OSError):
        await open_connection_checked(endpoint, Policy(), "wyoming-stt", timeout=5)


async def test_cloud_is_allowed_when_the_owner_allows_it(
    echo_server: tuple[str, int], socket_audit: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """With local_only off a CLOUD endpoint is connected (here a loopback stand-in)."""
    ip, port = echo_server
    endpoint = CheckedEndpoint("cloud.example", port, (ip,), Locality.CLOUD, "public")
    with pytest.raises(CloudRefused):
        await open_connection_checked(endpoint, Policy(), "cloud-stt", timeout=5)
    reader, writer = await open_connection_checked(
        endpoint, Policy(local_only=False), "cloud-stt", timeout=5
    )
    assert await roundtrip(reader, writer) == b"echo:hello\n"
    assert connects(socket_audit) == [(ip, port)]


def test_from_addresses_classifies() -> None:
    assert CheckedEndpoint.from_addresses("h", 1, ("::1",)).address_class == "loopback"
    assert CheckedEndpoint.from_addresses("h", 1, ("::1", "10.1.1.1")).locality is Locality.LAN
    assert CheckedEndpoint.from_addresses("h", 1, ("10.1.1.1", PUBLIC)).locality is Locality.CLOUD
    assert CheckedEndpoint.from_addresses("h", 1, ()).locality is Locality.CLOUD
