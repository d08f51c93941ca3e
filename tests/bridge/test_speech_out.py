"""Answering back: response text spoken on the satellite, over both protocols; Wyoming server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import wave

import pytest

from bridge.protocol.hearth import decode_frame
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe, wait_for_retained
from tests.support.broker import Mosquitto

ONLINE = {"state": "online", "protocol": 1, "capabilities": {"wake_word": True, "speaker": True}, "play_rate": 16000}


@pytest.fixture(scope="module")
def speaking(tmp_path_factory):
    broker = Mosquitto().start()
    data = tmp_path_factory.mktemp("speech-out")
    bridge = BridgeProcess(broker.host, broker.port, data / "data",
                           args=["--set", "wyoming_server.enabled=true", "--set", "wyoming_server.port=0"]).start()
    try:
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


async def collect_play(probe: Probe, sat: str, timeout: float = 20) -> bytes:
    """The PCM a Hearth satellite is sent on <prefix>/satellite/<sat>/play, in sequence order."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        frames = [decode_frame(p) for t, p in probe.messages if t == f"hearth/satellite/{sat}/play"]
        if frames and frames[-1].last:
            frames.sort(key=lambda f: f.seq)
            assert [f.seq for f in frames] == list(range(len(frames)))
            assert all(len(f.pcm) <= 1920 for f in frames)  # small enough for an ESP32
            return b"".join(f.pcm for f in frames)
        await asyncio.sleep(0.1)
    raise TimeoutError("no complete playback")


async def test_hearth_response_is_spoken_and_recognizable(speaking) -> None:
    broker, _ = speaking
    async with Probe(broker.host, broker.port, ["hearth/satellite/speaker/#"]) as probe:
        await probe.client.publish("hearth/satellite/speaker/status", json.dumps(ONLINE), retain=True)
        await asyncio.sleep(0.3)
        await probe.client.publish("hearth/satellite/speaker/response", json.dumps(
            {"session_id": "s1", "text": "turn on the kitchen light", "conversation_id": None}))
        pcm = await collect_play(probe, "speaker")
        await probe.wait_for("/speaker/state", lambda d: d["state"] == "responding")
        seconds = len(pcm) / 32000
        assert 1.0 < seconds < 4.0
        await probe.client.publish("hearth/satellite/speaker/event", json.dumps({"type": "played"}))
        await probe.wait_for("/speaker/state", lambda d: d["state"] == "idle")
    # Close the loop: what the satellite was told to play is recognized back as the same words.
    result = await run_satellite(SatelliteOptions(sat_id="echo", host=broker.host, port=broker.port, timeout=20),
                                 bytes(16000) + pcm + bytes(16000))
    assert result["transcript"] == "turn on the kitchen light"


async def test_hermes_play_bytes_at_22050_and_say_finished(speaking) -> None:
    broker, _ = speaking
    async with Probe(broker.host, broker.port, ["hermes/#"]) as probe:
        await probe.client.publish("hermes/tts/say", json.dumps(
            {"text": "the kitchen light is on", "siteId": "esp32", "id": "req-1", "sessionId": "sess-9", "lang": None}))
        deadline = asyncio.get_running_loop().time() + 20
        plays: list[tuple[str, bytes]] = []
        while not plays and asyncio.get_running_loop().time() < deadline:
            plays = [(t, p) for t, p in probe.messages if t.startswith("hermes/audioServer/esp32/playBytes/")]
            await asyncio.sleep(0.1)
        assert plays, "no playBytes"
        topic, wav_bytes = plays[0]
        with wave.open(io.BytesIO(wav_bytes)) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
            assert 0.8 < wav.getnframes() / 22050 < 4.0
        request_id = topic.rsplit("/", 1)[1]
        await probe.client.publish("hermes/audioServer/esp32/playFinished", json.dumps({"id": request_id, "siteId": "esp32"}))
        finished = await probe.wait_for("hermes/tts/sayFinished", lambda d: d["id"] == "req-1")
        assert finished["siteId"] == "esp32" and finished["sessionId"] == "sess-9"


async def test_tts_that_hangs_times_out_and_the_satellite_returns_to_idle(tmp_path) -> None:
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(hang.stat().st_mode | stat.S_IEXEC)
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data",
                           args=["--set", f"tts.executable={hang}", "--set", "tts.timeout=1"]).start()
    try:
        async with Probe(broker.host, broker.port, ["hearth/satellite/hang/#"]) as probe:
            await probe.client.publish("hearth/satellite/hang/status", json.dumps(ONLINE), retain=True)
            await asyncio.sleep(0.3)
            await probe.client.publish("hearth/satellite/hang/response", json.dumps({"session_id": "x", "text": "hello"}))
            error = await probe.wait_for("/hang/error", lambda d: d["code"] == "tts_timeout", timeout=15)
            assert "hello" not in error["message"]  # errors never carry the text
            await probe.wait_for("/hang/state", lambda d: d["state"] == "idle")
    finally:
        bridge.stop()
        broker.close()


async def test_wyoming_server_transcribes_with_the_home_grammar(speaking, say) -> None:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    broker, _ = speaking
    status = wait_for_retained(broker.host, broker.port, "hearth/bridge/status", lambda d: d.get("state") == "online")
    port = status["wyoming_port"]
    pcm = load_wav_pcm16k(say("turn off the kitchen light"))
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await client.read_event())
        assert info.asr and info.asr[0].models[0].languages == ["en"]
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), 2048):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 2048]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            if Transcript.is_type(event.type):
                break
        assert Transcript.from_event(event).text == "turn off the kitchen light"
    _ = os


async def test_response_that_continues_the_conversation_listens_again(speaking, say) -> None:
    from bridge.protocol.hearth import encode_frame

    broker, _ = speaking
    answer = load_wav_pcm16k(say("turn off the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/satellite/asker/#"]) as probe:
        await probe.client.publish("hearth/satellite/asker/status", json.dumps(ONLINE), retain=True)
        await asyncio.sleep(0.3)
        await probe.client.publish("hearth/satellite/asker/response", json.dumps(
            {"session_id": "q1", "text": "which light", "continue": True}))
        await collect_play(probe, "asker")
        await probe.client.publish("hearth/satellite/asker/event", json.dumps({"type": "played"}))
        command = await probe.wait_for("/asker/command", lambda d: d["command"] == "start_streaming")
        await probe.wait_for("/asker/state", lambda d: d["state"] == "listening" and d["session_id"] == command["session_id"])
        for seq, offset in enumerate(range(0, len(answer) + 48000, 960)):
            chunk = (answer + bytes(48000))[offset:offset + 960]
            await probe.client.publish("hearth/satellite/asker/audio", encode_frame(77, seq, chunk))
            await asyncio.sleep(0.03)
            if probe.json("/asker/transcript"):
                break
        transcript = await probe.wait_for("/asker/transcript", lambda d: d["session_id"] == command["session_id"])
        assert transcript["text"] == "turn off the kitchen light"


@pytest.mark.parametrize("barge_in", [True, False])
async def test_wake_word_during_playback(speaking, say, barge_in) -> None:
    from bridge.protocol.hearth import encode_frame

    broker, _ = speaking
    sat = f"barge-{barge_in}".lower()
    command = load_wav_pcm16k(say("okay nabu, turn on the kitchen light", speed=150))
    status = {"state": "online", "protocol": 1, "capabilities": {"wake_word": False, "barge_in": barge_in}}
    async with Probe(broker.host, broker.port, [f"hearth/satellite/{sat}/#"]) as probe:
        await probe.client.publish(f"hearth/satellite/{sat}/status", json.dumps(status), retain=True)
        await asyncio.sleep(0.3)
        long_answer = "the kitchen light, the bedroom light and the living room lamp are all on, and the garage door is closed"
        await probe.client.publish(f"hearth/satellite/{sat}/response", json.dumps({"session_id": "r", "text": long_answer}))
        await probe.wait_for(f"/{sat}/state", lambda d: d["state"] == "responding")
        audio = command + bytes(32000)
        for seq, offset in enumerate(range(0, len(audio), 960)):
            await probe.client.publish(f"hearth/satellite/{sat}/audio", encode_frame(5, seq, audio[offset:offset + 960]))
            await asyncio.sleep(0.03)
        await asyncio.sleep(1.0)
        stops = [d for d in probe.json(f"/{sat}/command") if d["command"] == "stop_playback"]
        transcripts = probe.json(f"/{sat}/transcript")
        if barge_in:
            assert stops, "the wake word should have stopped playback"
            assert transcripts and transcripts[0]["text"] == "turn on the kitchen light"
        else:
            assert not stops and not transcripts  # its own audio during playback is not a command


async def test_hermes_end_session_text_is_spoken_where_the_session_was(speaking, say) -> None:
    broker, _ = speaking
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hermes/audioServer/#"]) as probe:
        result = await run_satellite(SatelliteOptions(sat_id="esp-hall", host=broker.host, port=broker.port,
                                                      protocol="hermes", timeout=20), pcm)
        # A Hermes dialogue manager ends the session with text; only the session id says where.
        await probe.client.publish("hermes/dialogueManager/endSession", json.dumps(
            {"sessionId": result["session_id"], "text": "the kitchen light is on"}))
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if any(t.startswith("hermes/audioServer/esp-hall/playBytes/") for t, _ in probe.messages):
                break
            await asyncio.sleep(0.1)
        assert any(t.startswith("hermes/audioServer/esp-hall/playBytes/") for t, _ in probe.messages)
