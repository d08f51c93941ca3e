"""The satellite restates the protocol (it must not import the bridge); here it is checked against
the bridge's own definitions, so the two cannot drift apart."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import bridge
from bridge.config import WAKE_WORDS as BRIDGE_WAKE_WORDS
from bridge.protocol import hearth
from bridge.protocol.messages import SatelliteEvent, SatelliteStatus
from hearth_satellite import protocol
from hearth_satellite.audio import LevelMeter, Sound
from hearth_satellite.satellite import Options, Satellite

PACKAGE = Path(protocol.__file__).parent


def test_frame_header_matches_the_bridge() -> None:
    assert protocol.PROTOCOL_VERSION == bridge.PROTOCOL_VERSION
    assert protocol.FRAME_HEADER.format == hearth.FRAME_HEADER.format
    assert protocol.FRAME_HEADER.size == hearth.FRAME_HEADER.size == 12
    assert protocol.FLAG_LAST == hearth.FLAG_LAST
    assert protocol.FRAME_BYTES == hearth.RECOMMENDED_FRAME_BYTES
    assert protocol.MAX_FRAME_PAYLOAD == hearth.MAX_FRAME_PAYLOAD
    pcm = bytes(range(256)) * 3 + bytes(192)
    for last in (False, True):
        ours = protocol.encode_frame(0xFEEDBEEF, 4242, pcm, last=last)
        assert ours == hearth.encode_frame(0xFEEDBEEF, 4242, pcm, last=last)
        frame = hearth.decode_frame(ours)
        assert (frame.stream_id, frame.seq, frame.last, frame.pcm) == (0xFEEDBEEF, 4242, last, pcm)
        # ... and the satellite reads the bridge's `play` chunks
        back = protocol.decode_frame(hearth.encode_frame(7, 3, pcm[:1920], last=last))
        assert back is not None and (back.stream_id, back.seq, back.last, back.pcm) == (7, 3, last, pcm[:1920])
    assert protocol.decode_frame(b"\x01\x00") is None
    assert protocol.decode_frame(hearth.encode_frame(1, 0, b"\x00")) is None  # odd PCM


def test_topics_match_the_bridge() -> None:
    ours = protocol.SatelliteTopics("home/voice/", "pi@kitchen")
    theirs = hearth.Topics("home/voice/")
    for leaf in (*protocol.SatelliteTopics.OUTBOUND, *protocol.SatelliteTopics.INBOUND):
        assert getattr(ours, leaf) == theirs.satellite("pi@kitchen", leaf)
        assert theirs.parse_satellite_topic(getattr(ours, leaf)) == ("pi@kitchen", leaf)
    assert protocol.SatelliteTopics.OUTBOUND == hearth.SATELLITE_INBOUND
    assert set(protocol.SatelliteTopics.INBOUND) <= hearth.BRIDGE_OUTBOUND
    assert protocol.WAKE_WORDS == hearth.WAKE_WORDS == tuple(BRIDGE_WAKE_WORDS)
    assert protocol.SATELLITE_ID.pattern == hearth.SATELLITE_ID_PATTERN
    with pytest.raises(ValueError):
        protocol.SatelliteTopics("hearth", "living room")


def test_status_and_wake_event_are_what_the_bridge_reads(tmp_path: Path) -> None:
    sat = Satellite(Options(sat_id="pi-kitchen", area="kitchen", play_rate=22050, wake_word="hey_jarvis"))
    try:
        status = SatelliteStatus.from_json(json.loads(json.dumps(sat.status())))
    finally:
        sat.wake.close()
    assert status.online and status.on_device_wake and status.area == "kitchen"
    assert status.wake_word == "hey_jarvis" and status.play_rate == 22050
    assert status.info["muted"] is False
    event = SatelliteEvent.from_json({"type": "wake", "wake_word": "okay_nabu", "stream_id": 17,
                                      "wake_probability": 0.97, "speech_db": 23.5})
    assert (event.type, event.wake_word, event.stream_id) == ("wake", "okay_nabu", 17)


def test_the_package_does_not_import_the_bridge() -> None:
    """A Pi Zero runs the satellite without the bridge's dependencies (pocketsphinx, hassil)."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] not in ("bridge", "pocketsphinx", "hassil", "custom_components"), \
                    f"{path.name} imports {name}"


def test_speech_level_above_the_noise_floor() -> None:
    """speech_db: the RMS of the voiced chunks of the last second above the satellite's floor."""
    import numpy as np

    rng = np.random.default_rng(3)
    meter = LevelMeter()
    quiet = (rng.normal(0, 30, 480 * 60)).astype("<i2").tobytes()  # about -61 dBFS
    for i in range(0, len(quiet), 960):
        meter.add(quiet[i:i + 960])
    floor = meter.floor
    assert floor is not None and -66 < floor < -58
    tone = (np.sin(np.arange(480 * 40) * 0.2) * 3000).astype("<i2").tobytes()  # about -23 dBFS
    for i in range(0, len(tone), 960):
        meter.add(tone[i:i + 960])
    assert 33 < meter.speech_db() < 42
    assert meter.floor is not None and meter.floor < floor + 1.0  # speech did not drag it up


def test_sounds_are_read_from_wav(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "ding.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(b"\x10\x00\x30\x00" * 100)
    sound = Sound.load(path)
    assert sound.rate == 22050 and sound.pcm == b"\x20\x00" * 100
