"""stand_down (THE CONTRACT): a satellite that lost the arbitration stops streaming at once,
plays no sound and goes back to listening for the wake word."""

from __future__ import annotations

import asyncio
import json
import time
import wave

import pytest

from hearth_satellite.protocol import FRAME_HEADER
from tests.satellite.conftest import SatelliteProcess, audio_frames, events_of, wait_status
from tests.support.bridge_proc import Probe

pytestmark = pytest.mark.timeout(120)


async def test_stand_down_stops_the_stream_at_once_without_sound(live, say, tmp_path) -> None:
    broker, _ = live
    ding = tmp_path / "done.wav"
    with wave.open(str(ding), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x10" * 3200)  # 0.2 s
    sat = SatelliteProcess(broker, tmp_path, "pi-hall", "--done-sound", str(ding)).start()
    try:
        async with Probe(broker.host, broker.port, ["hearth/satellite/+/audio", "hearth/satellite/pi-hall/#"]) as probe:
            await wait_status(probe, "pi-hall", state="online")
            heard = asyncio.create_task(sat.heard(say("okay nabu, turn on the kitchen light")))
            # As the bridge does for a satellite that lost: stand_down right after its wake event.
            deadline = time.monotonic() + 15
            while not events_of(probe, "pi-hall", "wake"):
                assert time.monotonic() < deadline, sat.log()
                await asyncio.sleep(0.005)
            [(_, wake)] = events_of(probe, "pi-hall", "wake")
            assert 0 < wake["wake_probability"] <= 1 and wake["speech_db"] > 0
            # (This bridge has no rival for it and opened a session: its id is the one told.)
            first = (await probe.wait_for("/pi-hall/wake", timeout=5))["session_id"]
            await probe.client.publish("hearth/satellite/pi-hall/command",
                                       json.dumps({"command": "stand_down", "session_id": first}))
            told_at = time.monotonic()
            await heard
            await asyncio.sleep(0.5)
            frames = audio_frames(probe, "pi-hall")
            late = [at for at, _, _ in frames if at > told_at]
            # a few 30 ms frames may have been in flight (~100 ms); the command itself was 2.5 s long
            assert len(late) <= 4, (len(frames), len(late))
            assert all(FRAME_HEADER.unpack_from(p)[3] == wake["stream_id"] for _, _, p in frames)
            assert sat.played_bytes() == 0  # no done sound, nothing played
            # The bridge (with no arbitration in this test) times the session out.
            await probe.wait_for("/pi-hall/error", lambda d: d.get("fatal") is True, timeout=10)
            assert "error" in sat.events()

            # Back to listening: the next wake word opens a session that goes through. The earlier
            # session's commands, arriving late, do not end it.
            streamed = len(frames)
            mark = len(probe.messages)
            heard = asyncio.create_task(sat.heard(say("okay nabu, turn on the kitchen light")))
            listening = await wait_status(probe, "pi-hall", mark, timeout=15, leaf="state", state="listening")
            await asyncio.sleep(0.1)  # the satellite has the same message by now
            for command in ("stand_down", "stop_streaming"):
                await probe.client.publish("hearth/satellite/pi-hall/command",
                                           json.dumps({"command": command, "session_id": first}))
            await heard
            assert listening["session_id"] != first
            transcript = await probe.wait_for("/pi-hall/transcript", timeout=20)
            assert transcript["text"] == "turn on the kitchen light"
            assert f"stand_down for session {first}, not this stream's: ignored" in sat.log()
            assert len(events_of(probe, "pi-hall", "wake")) == 2
            assert len(audio_frames(probe, "pi-hall")) > streamed + 30
            await probe.wait_for("/pi-hall/command", lambda d: d["command"] == "stop_streaming")
            deadline = time.monotonic() + 5
            while sat.played_bytes() < 6400:  # the done sound, after stop_streaming
                assert time.monotonic() < deadline, sat.log()
                await asyncio.sleep(0.05)
    finally:
        sat.stop()
