"""hearth-satellite end to end: its own wake word, the command understood by the real bridge, the
answer played; a broker-side subscriber proves no audio left before the wake word or while muted."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from hearth_satellite.protocol import FRAME_BYTES, FRAME_HEADER
from tests.satellite.conftest import SatelliteProcess, audio_frames, events_of, wait_status
from tests.support.bridge_proc import Probe
from tests.support.signing import signed

pytestmark = pytest.mark.timeout(120)


async def test_wake_command_answer_and_privacy(live, say, tmp_path) -> None:
    broker, bridge = live
    sat = SatelliteProcess(broker, tmp_path, "pi-kitchen").start()
    try:
        async with Probe(broker.host, broker.port, ["hearth/satellite/+/audio", "hearth/satellite/pi-kitchen/#",
                                                    "hearth/bridge/policy/result"]) as probe:
            status = await wait_status(probe, "pi-kitchen", state="online")
            assert status["capabilities"]["wake_word"] is True
            assert status["muted"] is False and status["play_rate"] == 16000 and status["wake_word"] == "okay_nabu"

            # Speech without the wake word: nothing is published.
            await sat.heard(say("turn on the kitchen light"))
            await asyncio.sleep(1.0)
            assert audio_frames(probe) == []
            assert events_of(probe, "pi-kitchen", "wake") == []

            # The wake word, then the command: understood by the bridge.
            await sat.heard(say("okay nabu, turn on the kitchen light"))
            transcript = await probe.wait_for("/pi-kitchen/transcript", timeout=20)
            assert transcript["text"] == "turn on the kitchen light", sat.log()
            intent = await probe.wait_for("/pi-kitchen/intent")
            assert intent["intent"]["name"] == "HassTurnOn"
            [(woke_at, wake)] = events_of(probe, "pi-kitchen", "wake")
            assert wake["wake_word"] == "okay_nabu"
            assert 0.5 < wake["wake_probability"] <= 1.0
            assert wake["speech_db"] > 20  # espeak-ng speech over a quiet (-80 dBFS) room
            frames = audio_frames(probe)
            assert frames and all(at >= woke_at for at, _, _ in frames)  # none before the wake event
            headers = [FRAME_HEADER.unpack_from(p) for _, _, p in frames]
            assert {h[3] for h in headers} == {wake["stream_id"]}
            assert [h[4] for h in headers] == list(range(len(headers)))
            assert all(len(p) == FRAME_HEADER.size + FRAME_BYTES for _, _, p in frames)
            stop = await probe.wait_for("/pi-kitchen/command", lambda d: d["command"] == "stop_streaming")
            await asyncio.sleep(0.3)
            streamed = len(audio_frames(probe))
            assert streamed * 0.03 < 5.0  # it stopped when told to (the clip is about 3 s)

            # Home Assistant's answer is spoken by the bridge and played by the satellite.
            await probe.client.publish("hearth/satellite/pi-kitchen/response", json.dumps(
                {"session_id": stop["session_id"], "text": "the kitchen light is on", "conversation_id": None}))
            await probe.wait_for("/pi-kitchen/event", lambda d: d["type"] == "played", timeout=20)
            assert sat.played_bytes() > 16000 * 2 * 0.5  # at least half a second of speech
            assert sat.rates.read_text().split() == ["16000"]
            assert len(audio_frames(probe)) == streamed  # playing sent nothing

            # Muted by the bridge's policy: the wake word and a command during the mute send nothing.
            mark = len(probe.messages)
            await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
                {"request_id": "m1", "microphones": {"pi-kitchen": {"muted": True}}}))
            await wait_status(probe, "pi-kitchen", mark, muted=True)
            await sat.heard(say("okay nabu, turn off the kitchen light"))
            await asyncio.sleep(1.0)
            assert len(audio_frames(probe)) == streamed
            assert len(events_of(probe, "pi-kitchen", "wake")) == 1
            mark = len(probe.messages)
            await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
                {"request_id": "m2", "microphones": {"pi-kitchen": {"muted": False}}}))
            await wait_status(probe, "pi-kitchen", mark, muted=False)

            # Muted by the local switch (a file): the same.
            mark = len(probe.messages)
            sat.mute_file.touch()
            await wait_status(probe, "pi-kitchen", mark, muted=True)
            await sat.heard(say("okay nabu, turn off the kitchen light"))
            await asyncio.sleep(1.0)
            assert len(audio_frames(probe)) == streamed
            assert len(events_of(probe, "pi-kitchen", "wake")) == 1
            mark = len(probe.messages)
            sat.mute_file.unlink()
            await wait_status(probe, "pi-kitchen", mark, muted=False)

            # ... and by signals (a button wired to a script).
            mark = len(probe.messages)
            sat.signal(signal.SIGUSR1)
            await wait_status(probe, "pi-kitchen", mark, muted=True)
            mark = len(probe.messages)
            sat.signal(signal.SIGUSR2)
            await wait_status(probe, "pi-kitchen", mark, muted=False)

            # Unmuted, the clip spoken during the mutes wakes it: the mutes, not the clip, kept it quiet.
            await sat.heard(say("okay nabu, turn off the kitchen light"))
            transcript = await probe.wait_for("/pi-kitchen/transcript",
                                              lambda d: d["text"] == "turn off the kitchen light", timeout=20)
            assert len(events_of(probe, "pi-kitchen", "wake")) == 2
            assert len(audio_frames(probe)) > streamed

            events = sat.events()
            for event in ("wake", "listening", "thinking", "speaking", "idle", "muted"):
                assert event in events, events
            assert events.index("wake") < events.index("listening") < events.index("thinking") \
                < events.index("speaking")
    finally:
        sat.stop()


async def test_a_question_is_played_then_answered_without_the_wake_word(live, say, tmp_path) -> None:
    """The bridge asks (here for Home Assistant, `ask`): hearth-satellite plays the question, says
    `played`, streams on `start_streaming` without its wake word, and stops when told to."""
    broker, _ = live
    sat = SatelliteProcess(broker, tmp_path, "pi-asked").start()
    try:
        async with Probe(broker.host, broker.port, ["hearth/satellite/pi-asked/#"]) as probe:
            await wait_status(probe, "pi-asked", state="online")
            await probe.client.publish("hearth/satellite/pi-asked/ask",
                                       json.dumps({"request_id": "q1", "text": "Open the garage door?"}))
            await probe.wait_for("/pi-asked/event", lambda d: d["type"] == "played", timeout=20)
            assert sat.played_bytes() > 16000 * 2 * 0.5
            start = await probe.wait_for("/pi-asked/command", lambda d: d["command"] == "start_streaming")
            await sat.heard(say("yes"))
            answer = await probe.wait_for("/pi-asked/answer", timeout=20)
            assert (answer["request_id"], answer["outcome"]) == ("q1", "yes"), sat.log()
            await probe.wait_for("/pi-asked/command", lambda d: d["command"] == "stop_streaming"
                                 and d["session_id"] == start["session_id"])
            assert events_of(probe, "pi-asked", "wake") == []  # no wake word was needed
    finally:
        sat.stop()
