"""Bad input gets a clear, counted error and the bridge keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.request

import numpy as np
import pytest

from bridge.audio.wav import make_wav
from bridge.protocol.hearth import encode_frame
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import Probe

ONLINE = json.dumps({"state": "online", "protocol": 1, "audio": {"rate": 16000, "width": 2, "channels": 1},
                     "capabilities": {"wake_word": True}})
CONTINUOUS = json.dumps({"state": "online", "protocol": 1, "capabilities": {"wake_word": False}})


def lying_wav() -> bytes:
    wav = bytearray(make_wav(b"\0\0" * 256))
    struct.pack_into("<H", wav, 22, 0)  # zero channels
    return bytes(wav)


# (name, [(topic, payload)], expected error code, where the error shows up)
CASES = [
    ("not_audio_hermes", [("hermes/audioServer/bad1/audioFrame", b"definitely not a wav")], "not_wav"),
    ("truncated_wav", [("hermes/audioServer/bad2/audioFrame", make_wav(b"\0" * 512)[:30])], "bad_header"),
    ("lying_wav_header", [("hermes/audioServer/bad3/audioFrame", lying_wav())], "unsupported_format"),
    ("wrong_sample_format", [("hermes/audioServer/bad4/audioFrame", make_wav(b"\0" * 64, rate=2000))], "unsupported_format"),
    ("hearth_odd_pcm", [("hearth/satellite/badfmt/status", ONLINE.encode()),
                        ("hearth/satellite/badfmt/audio", encode_frame(1, 0, b"\0" * 3))], "bad_frame"),
    ("oversized", [("hearth/satellite/big/audio", bytes(200_000))], "oversized"),
    ("invalid_json_event", [("hearth/satellite/badjson/status", ONLINE.encode()),
                            ("hearth/satellite/badjson/event", b"{not json")], "invalid_json"),
    ("invalid_json_hermes", [("hermes/asr/startListening", b"[1, 2")], "invalid_json"),
    ("unparseable_topic", [("hearth/satellite/a/b/c", b"{}")], "bad_topic"),
    ("bad_satellite_id", [("hearth/satellite/k%20!/event", b"{}")], "bad_satellite_id"),
    ("unknown_satellite", [("hearth/satellite/ghost/audio", encode_frame(1, 0, b"\0" * 960))], "unknown_satellite"),
    ("frames_without_session", [("hearth/satellite/nosess/status", ONLINE.encode()),
                                ("hearth/satellite/nosess/audio", encode_frame(5, 0, b"\0" * 960))], "no_session"),
    ("unknown_event_type", [("hearth/satellite/evt/status", ONLINE.encode()),
                            ("hearth/satellite/evt/event", b'{"type": "dance"}')], "bad_event"),
    ("bad_status", [("hearth/satellite/st/status", b'{"state": "sleepy"}')], "bad_status"),
]


@pytest.mark.parametrize(("name", "messages", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_reported(live, name, messages, code) -> None:
    broker, _ = live
    async with Probe(broker.host, broker.port, ["hearth/bridge/error", "hearth/satellite/+/error", "hermes/error/asr"]) as probe:
        for topic, payload in messages:
            await probe.client.publish(topic, payload)
            await asyncio.sleep(0.1)
        error = await probe.wait_for("error", lambda d: d.get("code") == code or d.get("context") == code, timeout=10)
        assert error.get("message") or error.get("error")


async def test_bridge_keeps_serving_while_flooded_with_bad_input(live, say) -> None:
    broker, bridge = live
    pcm = load_wav_pcm16k(say("turn off the kitchen light"))

    async def garbage() -> None:
        async with Probe(broker.host, broker.port, []) as probe:
            for _ in range(40):
                for _name, messages, _code in CASES:
                    for topic, payload in messages:
                        await probe.client.publish(topic, payload)
                await asyncio.sleep(0.05)

    opts = SatelliteOptions(sat_id="healthy", host=broker.host, port=broker.port, timeout=20)
    result, _ = await asyncio.gather(run_satellite(opts, pcm), garbage())
    assert result["transcript"] == "turn off the kitchen light"
    # errors were counted, not just logged
    status = json.loads(urllib.request.urlopen(_status_url(broker) + "/stats", timeout=5).read())  # noqa: S310 - loopback
    assert status["errors"]["not_wav"] >= 40
    assert status["errors"]["unknown_satellite"] >= 40


def _status_url(broker) -> str:
    from tests.support.bridge_proc import wait_for_retained

    return wait_for_retained(broker.host, broker.port, "hearth/bridge/status", lambda d: d.get("state") == "online")["status_api"]


async def _half_a_command(probe: Probe, sat: str, pcm: bytes, stream_id: int) -> None:
    """A satellite announces itself, wakes, and streams the first half of a command."""
    await probe.client.publish(f"hearth/satellite/{sat}/status", ONLINE, retain=True)
    await asyncio.sleep(0.2)
    await probe.client.publish(f"hearth/satellite/{sat}/event", json.dumps({"type": "wake", "stream_id": stream_id}))
    for seq, offset in enumerate(range(0, len(pcm) // 2, 960)):
        await probe.client.publish(f"hearth/satellite/{sat}/audio", encode_frame(stream_id, seq, pcm[offset:offset + 960]))
        await asyncio.sleep(0.03)


async def test_satellite_vanishing_mid_utterance(live, say) -> None:
    broker, _ = live
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/satellite/vanish/error", "hearth/satellite/vanish/state"]) as probe:
        await _half_a_command(probe, "vanish", pcm, 9)
        await probe.client.publish("hearth/satellite/vanish/status", json.dumps({"state": "offline"}), retain=True)
        error = await probe.wait_for("/vanish/error", lambda d: d["code"] == "satellite_offline", timeout=10)
        assert error["session_id"] and error["fatal"] is True
        await probe.wait_for("/vanish/state", lambda d: d["state"] == "idle" and d["online"] is False)


async def test_satellite_that_stops_sending_mid_utterance_times_out(live, say) -> None:
    broker, _ = live
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/satellite/silent/error", "hearth/satellite/silent/state"]) as probe:
        await _half_a_command(probe, "silent", pcm, 3)
        error = await probe.wait_for("/silent/error", lambda d: d["code"] == "audio_timeout", timeout=10)
        assert "no audio" in error["message"]
        await probe.wait_for("/silent/state", lambda d: d["state"] == "idle")


async def test_a_flooding_satellite_is_capped_and_does_not_starve_others(live, say) -> None:
    broker, _ = live
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    noise = (np.random.default_rng(3).standard_normal(4000) * 3000).astype("<i2").tobytes()

    async def flood() -> None:
        async with Probe(broker.host, broker.port, []) as probe:
            await probe.client.publish("hearth/satellite/flood/status", CONTINUOUS, retain=True)
            await asyncio.sleep(0.2)
            for seq in range(3000):  # 12 minutes of audio as fast as the broker takes it
                await probe.client.publish("hearth/satellite/flood/audio", encode_frame(1, seq, noise))
                if seq % 500 == 0:
                    await asyncio.sleep(0)

    opts = SatelliteOptions(sat_id="calm", host=broker.host, port=broker.port, timeout=30)
    result, _ = await asyncio.gather(run_satellite(opts, pcm), flood())
    assert result["transcript"] == "turn on the kitchen light"
    stats = json.loads(urllib.request.urlopen(_status_url(broker) + "/stats", timeout=5).read())  # noqa: S310 - loopback
    flood_stats = stats["satellites"]["flood"]
    assert flood_stats["rate_limited"] > 0  # most of the 12 minutes was refused on arrival
    assert flood_stats["frames"] < 200  # only ~real time got through to wake-word detection
    assert flood_stats["queue"] <= 256
