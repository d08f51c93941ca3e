"""The MQTT link against a real Mosquitto: messages in, the bounded outgoing queue, reconnection,
and where the broker it reached is (the locality of audio forwarded through it)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.protocol.hearth import is_audio_topic
from bridge.service.link import (
    INBOUND_AUDIO_CAP,
    INBOUND_CAP,
    OUTGOING_CAP,
    BrokerError,
    Connection,
    InboundBacklog,
    LastWill,
    Message,
    MqttLink,
)
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


def test_a_backlog_sheds_audio_first_and_stays_bounded() -> None:
    """Messages wait in the link's incoming queue when the bridge is starved of CPU: beyond
    INBOUND_AUDIO_CAP waiting, audio frames are shed and control messages still queue; beyond
    INBOUND_CAP everything is shed. Each shed message is counted."""
    import aiomqtt  # noqa: PLC0415 - the link's own client library builds these messages

    backlog = InboundBacklog(is_audio_topic)
    queue = backlog.queue_type()()
    audio = [aiomqtt.Message(f"hearth/satellite/s{i % 7}/audio", b"x", 0, False, 0, None)
             for i in range(INBOUND_AUDIO_CAP + 500)]
    hermes = aiomqtt.Message("hermes/audioServer/kitchen/audioFrame", b"x", 0, False, 0, None)
    control = aiomqtt.Message("hearth/bridge/policy/set", b"{}", 0, False, 0, None)
    for message in audio:
        queue.put_nowait(message)
    queue.put_nowait(hermes)
    queue.put_nowait(control)
    assert queue.qsize() == INBOUND_AUDIO_CAP + 1
    assert (backlog.shed_audio, backlog.shed_other) == (501, 0)
    while queue.qsize() < INBOUND_CAP:
        queue.put_nowait(control)
    queue.put_nowait(control)
    assert queue.qsize() == INBOUND_CAP
    assert backlog.shed_other == 1
    waiting = [queue.get_nowait() for _ in range(INBOUND_AUDIO_CAP + 1)]
    assert str(waiting[-1].topic) == "hearth/bridge/policy/set"  # the control message kept its place


async def test_the_link_hands_its_messages_through_the_bounded_queue(mosquitto: Mosquitto) -> None:
    """A starved bridge: while the handler blocks the event loop, a satellite floods audio and
    then a policy command arrives. Memory stays bounded (audio shed, counted) and the policy
    command is handled."""
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    import paho.mqtt.client as paho  # noqa: PLC0415 - a publisher outside the blocked event loop

    received: list[Message] = []
    flood = 20 * INBOUND_AUDIO_CAP

    def slow(message: Message) -> None:
        received.append(message)
        if len(received) == 1:
            done.wait(10)  # the event loop stops here while the flood arrives
            time.sleep(0.5)

    async def on_connect(connection: Connection) -> None:
        await connection.publish("test/ready", b"1")

    done = threading.Event()
    link = MqttLink(MqttSettings(port=mosquitto.port), "backlog-test", subscriptions=lambda: ["test/in/#"],
                    will=LastWill("test/status", b"offline"), on_connect=on_connect, on_message=slow,
                    sheddable=is_audio_topic)
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 10)

    def publish() -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        client.publish("test/in/first", b"1").wait_for_publish()
        time.sleep(0.3)
        for _ in range(flood):
            client.publish("test/in/sat/audio", bytes(64))
        client.publish("test/in/policy", b"mute", qos=1).wait_for_publish()
        client.loop_stop()
        client.disconnect()
        done.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        await _wait_for(lambda: any(m.topic == "test/in/policy" for m in received), 30)
    finally:
        publisher.join()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    audio = sum(m.topic == "test/in/sat/audio" for m in received)
    assert link.backlog.shed_audio > 0
    assert audio + link.backlog.shed_audio == flood


async def test_the_reconnect_log_says_the_pause_actually_taken(caplog: pytest.LogCaptureFixture) -> None:
    """The probe: "retrying in 16.0 s" while the next attempt came a second later. After losing a
    broker the pause is capped (FAST_RETRY_DELAY); each line must say the pause that follows it."""
    import logging
    import re

    from bridge.service.link import FAST_RETRY_DELAY

    broker = Mosquitto().start()
    link = MqttLink(MqttSettings(port=broker.port, reconnect_max=30.0), "retry-log", subscriptions=lambda: [],
                    will=LastWill("test/status", b"offline"), on_connect=lambda _c: asyncio.sleep(0),
                    on_message=lambda _m: None)
    caplog.set_level(logging.INFO, logger="bridge")
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(3.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        broker.close()
    said = [(record.created, float(match.group(1))) for record in caplog.records
            if (match := re.search(r"(?:retrying|reconnecting) in ([0-9.]+) s", record.getMessage()))]
    assert len(said) >= 3, caplog.text
    for (at, pause), (next_at, _) in zip(said, said[1:], strict=False):
        assert pause <= FAST_RETRY_DELAY * 1.2 + 0.05, caplog.text  # a broker just lost: about a second
        assert pause - 0.1 <= next_at - at <= pause + 1.0, caplog.text  # and that is what was waited
