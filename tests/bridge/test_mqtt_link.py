"""The MQTT link against a real Mosquitto: messages in, the bounded outgoing queue, reconnection,
and where the broker it reached is (the locality of audio forwarded through it)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.service.link import OUTGOING_CAP, BrokerError, Connection, LastWill, Message, MqttLink
from bridge.settings import MqttSettings
from tests.support.broker import Mosquitto, free_port


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _link(port: int, received: list[Message], connects: list[int]) -> MqttLink:
    async def on_connect(connection: Connection) -> None:
        connects.append(1)
        await connection.publish("test/status", b"online", retain=True, qos=1)

    return MqttLink(MqttSettings(port=port, reconnect_max=0.5), "link-test", subscriptions=lambda: ["test/in/#"],
                    will=LastWill("test/status", b"offline"), on_connect=on_connect, on_message=received.append)


async def test_messages_in_and_out_and_the_broker_is_loopback(mosquitto: Mosquitto) -> None:
    received: list[Message] = []
    connects: list[int] = []
    link = _link(mosquitto.port, received, connects)
    assert link.broker_address_class() == "public"  # nothing reached yet: fail closed
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        assert link.broker_address_class() == "loopback"
        async with Connection(MqttSettings(port=mosquitto.port), "peer") as peer:
            await peer.subscribe("test/out")
            await peer.subscribe("test/status")
            await peer.publish("test/in/a", b"\x00\x01binary")
            link.publish("test/out", b"hello")
            seen: list[Message] = []

            async def collect() -> None:
                async for message in peer.messages():
                    seen.append(message)

            collector = asyncio.create_task(collect())
            await _wait_for(lambda: any(m.topic == "test/out" for m in seen) and received)
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
        assert received[0] == Message("test/in/a", b"\x00\x01binary", False)
        assert Message("test/status", b"online", True) in seen
        assert any(m.payload == b"hello" for m in seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_broker_is_where_the_connection_went_not_what_it_is_called(mosquitto: Mosquitto) -> None:
    """A host name is not LAN for being a name: the class is the connected socket's peer address."""
    link = MqttLink(MqttSettings(host="localhost", port=mosquitto.port), "named", subscriptions=lambda: [],
                    will=LastWill("test/status", b"offline"), on_connect=lambda _c: asyncio.sleep(0),
                    on_message=lambda _m: None)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        assert link.broker_address_class() == "loopback"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_outgoing_queue_is_bounded_while_the_broker_is_away() -> None:
    link = _link(free_port(), [], [])  # nobody listens there
    for index in range(OUTGOING_CAP + 25):
        link.publish("test/out", str(index).encode())
    assert link.dropped_outgoing == 25
    assert link._outgoing.qsize() == OUTGOING_CAP  # noqa: SLF001
    assert link._outgoing.get_nowait()[1] == b"25"  # noqa: SLF001 - the oldest went


async def test_reconnects_after_the_broker_restarts_and_sends_what_waited(mosquitto: Mosquitto) -> None:
    received: list[Message] = []
    connects: list[int] = []
    link = _link(mosquitto.port, received, connects)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        mosquitto.stop()
        await _wait_for(lambda: not link.connected.is_set())
        link.publish("test/in/queued", b"kept")  # queued while away; comes back to us once connected
        mosquitto.start()
        await _wait_for(lambda: len(connects) >= 2, 20)
        await _wait_for(lambda: any(m.topic == "test/in/queued" for m in received), 10)
        assert link.reconnects >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_unreachable_broker_is_one_error_type() -> None:
    with pytest.raises(BrokerError):
        async with Connection(MqttSettings(port=free_port()), "nobody"):
            pass
