"""Proof: nothing heard before a confirmed mute is delivered after the confirmation.

One real Mosquitto, one real bridge, real espeak-ng speech. Four Hearth satellites each say a
command (a wake event, then the audio in real time) and are muted by a policy command at a set
offset from their end of speech: 20 offsets from 0.4 s before to 0.4 s after it, so some mutes
land while the satellite is still listening, some while its last words are being decoded (the
session is already closed: the old race, where the transcript and intent went out 30-45 ms after
`policy/result` said "muted"), some after the result. The probe is one MQTT client subscribed to
both the results and `policy/result`; the bridge publishes both on its one connection, so the
order the probe sees is the order the bridge sent them in.

For every offset: no `transcript` or `intent` of that satellite after the mute's `policy/result`.
The sweep must also really cross the end of the command: some utterances are delivered (before
the confirmation) and some are cut off, or the test proves nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import pytest

from bridge import PROTOCOL_VERSION
from bridge.protocol.hearth import RECOMMENDED_FRAME_BYTES, encode_frame
from bridge.tools.satellite import end_of_speech_offset, load_wav_pcm16k
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto

TEXT = "turn on the kitchen light"
SATS = [f"race-{n}" for n in range(4)]
OFFSETS = [round(-0.4 + 0.8 * n / 19, 3) for n in range(20)]  # -0.4 s .. +0.4 s around the end of speech
TRAILING_SILENCE = 0.6


@dataclass
class Trial:
    sat: str
    offset: float
    delivered: bool  # a transcript came (before the confirmation, or the test fails)
    late: list[str]  # results published after the confirmation (must stay empty)
    confirmed_after_eos_ms: float


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, say: Any) -> Iterator[tuple[Mosquitto, bytes]]:
    pcm = load_wav_pcm16k(say(TEXT))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("race") / "data")
    try:
        bridge.start().wait_online()
        yield broker, pcm
    finally:
        bridge.stop()
        broker.close()


async def policy_command(probe: Probe, command: dict[str, Any]) -> int:
    """Publishes a policy command; returns the index of its `policy/result` in the probe's record."""
    request_id = uuid.uuid4().hex[:10]
    await probe.client.publish("hearth/bridge/policy/set", json.dumps({"request_id": request_id, **command}))
    result = await probe.wait_for("hearth/bridge/policy/result", lambda d: d.get("request_id") == request_id)
    assert result["ok"] is True, result
    for index, (topic, payload) in enumerate(probe.messages):
        if topic == "hearth/bridge/policy/result" and json.loads(payload).get("request_id") == request_id:
            return index
    raise AssertionError("policy/result vanished")


def results_of(probe: Probe, sat: str, start: int) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for index, (topic, payload) in enumerate(probe.messages[start:], start):
        if topic.startswith(f"hearth/satellite/{sat}/") and topic.rsplit("/", 1)[1] in ("transcript", "intent",
                                                                                        "error"):
            out.append((index, topic.rsplit("/", 1)[1], json.loads(payload)))
    return out


async def trial(probe: Probe, satellite: aiomqtt.Client, sat: str, pcm: bytes, offset: float) -> Trial:
    eos = end_of_speech_offset(pcm)
    audio = pcm + bytes(int(TRAILING_SILENCE * 32000))
    start_index = len(probe.messages)
    stream_id = random.randrange(1 << 32)
    await satellite.publish(f"hearth/satellite/{sat}/event",
                            json.dumps({"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    confirmed: list[tuple[int, float]] = []

    async def mute() -> None:
        await asyncio.sleep(max(0.0, started + eos + offset - time.monotonic()))
        index = await policy_command(probe, {"microphones": {sat: {"muted": True}}})
        confirmed.append((index, probe.received_at[index]))

    muting = asyncio.create_task(mute())
    for seq, at in enumerate(range(0, len(audio), RECOMMENDED_FRAME_BYTES)):
        await asyncio.sleep(max(0.0, started + at / 32000 - time.monotonic()))
        await satellite.publish(f"hearth/satellite/{sat}/audio",
                                encode_frame(stream_id, seq, audio[at:at + RECOMMENDED_FRAME_BYTES]))
    await muting
    # The utterance's end: a transcript (delivered) or a fatal error (cut off by the mute).
    deadline = time.monotonic() + 10
    while not any(kind == "intent" or (kind == "error" and data.get("fatal"))
                  for _i, kind, data in results_of(probe, sat, start_index)):
        assert time.monotonic() < deadline, f"{sat}: no end of the utterance: {results_of(probe, sat, start_index)}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything else the bridge would still send for this utterance
    index, at = confirmed[0]
    seen = results_of(probe, sat, start_index)
    late = [f"{kind} {data.get('text')!r}" for i, kind, data in seen if i > index and kind != "error"]
    delivered = any(kind == "transcript" for _i, kind, _d in seen)
    await policy_command(probe, {"microphones": {sat: {"muted": False}}})
    return Trial(sat, offset, delivered, late, round((at - (started + eos)) * 1000, 1))


def test_no_result_is_delivered_after_a_confirmed_mute(bench: tuple[Mosquitto, bytes]) -> None:
    broker, pcm = bench

    async def run() -> list[Trial]:
        trials: list[Trial] = []
        async with Probe(broker.host, broker.port, ["hearth/satellite/+/transcript", "hearth/satellite/+/intent",
                                                    "hearth/satellite/+/error", "hearth/bridge/policy/result"]) as probe:
            clients = [aiomqtt.Client(broker.host, broker.port, identifier=f"{sat}-{uuid.uuid4().hex[:6]}")
                       for sat in SATS]
            for sat, client in zip(SATS, clients, strict=True):
                await client.__aenter__()
                await client.publish(f"hearth/satellite/{sat}/status", json.dumps({
                    "state": "online", "protocol": PROTOCOL_VERSION, "name": sat,
                    "audio": {"rate": 16000, "width": 2, "channels": 1},
                    "capabilities": {"wake_word": True, "speaker": False, "mute": True}}), qos=1, retain=True)
            await asyncio.sleep(0.3)
            try:
                # 5 rounds of 4 satellites at once; each round spreads its offsets over the range
                for round_ in range(5):
                    offsets = OFFSETS[round_::5]
                    trials += await asyncio.gather(*(trial(probe, client, sat, pcm, offset) for sat, client, offset
                                                     in zip(SATS, clients, offsets, strict=True)))
            finally:
                for client in clients:
                    await client.__aexit__(None, None, None)
        return trials

    trials = asyncio.run(run())
    summary = [(t.offset, t.confirmed_after_eos_ms, "delivered" if t.delivered else "cut off", t.late)
               for t in sorted(trials, key=lambda t: t.offset)]
    assert len(trials) == 20
    assert [t for t in trials if t.late] == [], summary
    # the sweep crosses the end of the command: both outcomes occur
    assert any(t.delivered for t in trials) and any(not t.delivered for t in trials), summary
