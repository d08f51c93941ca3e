"""The locality gate: every outgoing path asks it, it reads the policy each time and counts
what it refuses; and the synchronous broker-address check that fails closed.

The socket audit hook of test_privacy_locality records (and refuses) any non-loopback connect.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bridge.engines import Locality
from bridge.privacy.audit import AuditLog
from bridge.privacy.gate import LocalityGate
from bridge.privacy.locality import (
    CheckedEndpoint,
    CloudRefused,
    effective_address_class,
    locality_of_class,
)
from bridge.privacy.policy import Policy
from tests.bridge.test_privacy_locality import (  # noqa: F401 - fixtures
    PUBLIC,
    connects,
    echo_server,
    roundtrip,
    socket_audit,
)


def make_gate(local_only: bool = True) -> tuple[LocalityGate, dict[str, Policy]]:
    policy = {"now": Policy(local_only=local_only)}
    return LocalityGate(lambda: policy["now"], AuditLog()), policy


def test_locality_of_class() -> None:
    assert locality_of_class("none") is Locality.IN_PROCESS
    assert locality_of_class("loopback") is Locality.LAN
    assert locality_of_class("lan") is Locality.LAN
    assert locality_of_class("public") is Locality.CLOUD
    assert locality_of_class("elsewhere") is Locality.CLOUD
    assert locality_of_class("") is Locality.CLOUD


@pytest.mark.parametrize("address_class", ["none", "loopback", "lan"])
def test_check_allows_the_home_under_local_only(address_class: str) -> None:
    gate, _ = make_gate()
    gate.check("some-engine", address_class)
    assert gate.allows(address_class)
    assert gate.audit.counters["blocked_cloud_requests"] == 0


@pytest.mark.parametrize("address_class", ["public", "elsewhere", "", "LAN"])
def test_check_refuses_and_counts_public_and_unknown(address_class: str) -> None:
    gate, _ = make_gate()
    assert not gate.allows(address_class)
    with pytest.raises(CloudRefused) as info:
        gate.check("some-engine", address_class, host="stt.example")
    assert (info.value.engine, info.value.host, info.value.reason) == (
        "some-engine", "stt.example", "local_only"
    )
    assert "some-engine" in str(info.value) and "stt.example" in str(info.value)
    assert gate.audit.counters["blocked_cloud_requests"] == 1
    assert gate.audit.blocked_by() == {("some-engine", "local_only"): 1}


def test_check_reads_the_policy_every_time() -> None:
    gate, policy = make_gate(local_only=False)
    gate.check("e", "public")
    policy["now"] = Policy(local_only=True)
    with pytest.raises(CloudRefused):
        gate.check("e", "public")
    with pytest.raises(CloudRefused):
        gate.check("e", "public")
    policy["now"] = Policy(local_only=False)
    gate.check("e", "public")
    assert gate.audit.blocked_by() == {("e", "local_only"): 2}
    assert gate.policy is policy["now"]


def test_refusal_without_a_host_says_public_address() -> None:
    gate, _ = make_gate()
    with pytest.raises(CloudRefused) as info:
        gate.check("e", "public")
    assert "a public address" in str(info.value)


async def test_connect_refuses_a_public_endpoint_before_any_socket(
    socket_audit: list[tuple[str, tuple[Any, ...]]],
) -> None:
    gate, _ = make_gate()
    endpoint = CheckedEndpoint.from_addresses(PUBLIC, 10300, (PUBLIC,))
    with pytest.raises(CloudRefused) as info:
        await gate.connect(endpoint, "wyoming:cloud", timeout=5)
    assert info.value.host == PUBLIC
    assert socket_audit == []
    assert gate.audit.blocked_by() == {("wyoming:cloud", "local_only"): 1}


async def test_connect_rechecks_every_address_of_a_forged_endpoint(
    socket_audit: list[tuple[str, tuple[Any, ...]]],
) -> None:
    gate, _ = make_gate()
    forged = (
        CheckedEndpoint("stt.home", 10300, ("10.0.0.5", PUBLIC), Locality.LAN, "lan"),
        CheckedEndpoint("stt.home", 10300, ("10.0.0.5",), Locality.CLOUD, "lan"),
        CheckedEndpoint("stt.home", 10300, ("10.0.0.5",), Locality.LAN, "public"),
        CheckedEndpoint("stt.home", 10300, (), Locality.LAN, "lan"),
    )
    for endpoint in forged:
        assert effective_address_class(endpoint) == "public"
        with pytest.raises(CloudRefused):
            await gate.connect(endpoint, "wyoming:home", timeout=5)
    assert socket_audit == []
    assert gate.audit.blocked_by() == {("wyoming:home", "local_only"): len(forged)}


async def test_connect_to_the_home_under_local_only(
    echo_server: tuple[str, int], socket_audit: list[tuple[str, tuple[Any, ...]]]
) -> None:
    ip, port = echo_server
    gate, _ = make_gate()
    endpoint = CheckedEndpoint.from_addresses("engine.home", port, (ip,))
    assert effective_address_class(endpoint) == "loopback"
    reader, writer = await gate.connect(endpoint, "wyoming:home", timeout=5)
    assert await roundtrip(reader, writer) == b"echo:hello\n"
    assert connects(socket_audit) == [(ip, port)]
    assert gate.audit.counters["blocked_cloud_requests"] == 0


async def test_connect_to_the_cloud_when_the_owner_allows_it(
    echo_server: tuple[str, int], socket_audit: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """A CLOUD endpoint (a loopback stand-in) is connected once local-only is off."""
    ip, port = echo_server
    gate, policy = make_gate()
    endpoint = CheckedEndpoint("cloud.example", port, (ip,), Locality.CLOUD, "public")
    with pytest.raises(CloudRefused):
        await gate.connect(endpoint, "cloud-tts", timeout=5)
    policy["now"] = Policy(local_only=False)
    reader, writer = await gate.connect(endpoint, "cloud-tts", timeout=5)
    assert await roundtrip(reader, writer) == b"echo:hello\n"
    assert connects(socket_audit) == [(ip, port)]
    assert gate.audit.blocked_by() == {("cloud-tts", "local_only"): 1}


async def test_connect_errors_propagate_and_are_not_counted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    gate, _ = make_gate()
    with pytest.raises(OSError):
        await gate.connect(CheckedEndpoint.from_addresses("h", port, ("127.0.0.1",)), "e", 5)
    assert gate.audit.counters["blocked_cloud_requests"] == 0


