"""The cheap receive path keeps every message, in order (behaviour only, no timing).

The link reads the socket ahead in large pieces, handles every waiting packet per wake-up and
hands messages over in batches: under a burst from many satellites, with payloads of every size
(so pieces end in the middle of packets), nothing may be lost, duplicated or reordered, and the
bridge's per-satellite counts must match what each satellite sent.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from bridge.audio.wav import make_wav
from bridge.protocol.hearth import encode_frame
from bridge.service.link import Connection, LastWill, Message, MqttLink
from bridge.settings import MqttSettings
from tests.support.bridge_proc import BridgeProcess, wait_for_retained
from tests.support.broker import Mosquitto

SATELLITES = 12
PER_SATELLITE = 1500


def _publish_burst(port: int, done: threading.Event) -> None:
    """Every satellite's messages interleaved, in bursts as fast as paho sends them; sizes from 1 byte to 9 KB."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        last = None
        for seq in range(PER_SATELLITE):
            for sat in range(SATELLITES):
                size = (seq * 37 + sat * 101) % 9000
                payload = struct.pack("<HI", sat, seq) + bytes([seq % 251]) * size
                last = client.publish(f"test/in/sat{sat}/audio", payload)
            if seq % 10 == 9:
                # Bursts of 120 messages: a flood beyond what the broker queues for a QoS 0
                # subscriber would lose messages on the broker's side, whoever reads them.
                time.sleep(0.02)
        assert last is not None
        last.wait_for_publish(30)
        client.publish("test/in/end", b"end", qos=1).wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()
        done.set()


async def test_a_burst_from_many_satellites_arrives_whole_and_in_order(mosquitto: Mosquitto) -> None:
    received: list[Message] = []

    async def on_connect(connection: Connection) -> None:
        await connection.publish("test/ready", b"1")

    link = MqttLink(MqttSettings(port=mosquitto.port), "ingest-test", subscriptions=lambda: ["test/in/#"],
                    will=LastWill("test/status", b"offline"), on_connect=on_connect, on_message=received.append)
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 10)
    done = threading.Event()
    publisher = threading.Thread(target=_publish_burst, args=(mosquitto.port, done))
    publisher.start()
    try:
        async with asyncio.timeout(120):
            while not any(m.topic == "test/in/end" for m in received):
                await asyncio.sleep(0.05)
    finally:
        publisher.join()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (link.backlog.shed_audio, link.backlog.shed_other) == (0, 0)
    assert received[-1].topic == "test/in/end"
    per_sat: dict[int, list[int]] = {}
    for message in received[:-1]:
        sat, seq = struct.unpack_from("<HI", message.payload)
        assert message.topic == f"test/in/sat{sat}/audio"
        size = (seq * 37 + sat * 101) % 9000
        assert message.payload[6:] == bytes([seq % 251]) * size  # whole, not spliced with another
        per_sat.setdefault(sat, []).append(seq)
    assert sorted(per_sat) == list(range(SATELLITES))
    for sat, seqs in per_sat.items():
        assert seqs == list(range(PER_SATELLITE)), f"satellite {sat}: lost, repeated or reordered frames"


@pytest.fixture
def bridge(tmp_path: Path, mosquitto: Mosquitto):
    proc = BridgeProcess(mosquitto.host, mosquitto.port, tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


def test_the_bridge_counts_every_frame_of_a_burst_per_satellite(mosquitto: Mosquitto, bridge: BridgeProcess) -> None:
    """Six always-streaming satellites (three Hearth, three Hermes) each send 2.4 s of quiet room
    at once (within the rate limit's allowance): the bridge counts every frame of each, with no
    gap, no late frame and none dropped."""
    frames = 80  # 30 ms each
    status = wait_for_retained(mosquitto.host, mosquitto.port, "hearth/bridge/status",
                               lambda d: d.get("state") == "online")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        hearth = [f"stream-{i}" for i in range(3)]
        hermes = [f"site-{i}" for i in range(3)]
        for sat in hearth:
            client.publish(f"hearth/satellite/{sat}/status", json.dumps({
                "state": "online", "protocol": 1, "capabilities": {"wake_word": False}}), qos=1).wait_for_publish(10)
        time.sleep(0.5)
        room = bytes(960)
        last = None
        for seq in range(frames):
            for sat in hearth:
                last = client.publish(f"hearth/satellite/{sat}/audio", encode_frame(7, seq, room))
            for site in hermes:
                last = client.publish(f"hermes/audioServer/{site}/audioFrame", make_wav(room))
        assert last is not None
        last.wait_for_publish(10)
        url = status["status_api"]
        deadline = time.monotonic() + 30
        while True:
            stats = json.loads(urllib.request.urlopen(url + "/stats", timeout=5).read())  # noqa: S310 - loopback
            sats = stats["satellites"]
            if all(sats.get(s, {}).get("frames", 0) >= frames for s in hearth + hermes) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for sat in hearth + hermes:
            counters = sats[sat]
            assert counters["frames"] == frames, (sat, counters)
            assert (counters["gaps"], counters["late"], counters["dropped_queue_full"], counters["rate_limited"]) == (
                0, 0, 0, 0), (sat, counters)
        assert stats["shed_inbound"] == {"audio": 0, "other": 0}
    finally:
        client.loop_stop()
        client.disconnect()
