"""Hearth's wire payloads (bridge.protocol.messages): each round-trips, and inbound ones refuse
what is malformed with a coded error."""

from __future__ import annotations

import json

import pytest

from bridge import PROTOCOL_VERSION
from bridge.protocol.hearth import ProtocolError
from bridge.protocol.messages import (
    BridgeError,
    BridgeStatus,
    Command,
    IntentMessage,
    PolicyResult,
    SatelliteError,
    SatelliteEvent,
    SatelliteState,
    SatelliteStatus,
    TranscriptMessage,
    WakeMessage,
)

TIMINGS = {"end_of_speech_to_text_ms": 120.5, "endpoint_ms": 100.0, "decode_finish_ms": 20.5,
           "end_reason": "complete", "intent_ms": 0.0}
INTENT = {"name": "HassTurnOn", "confidence": 1.0, "sensitive": False, "broad": False,
          "slots": {"name": {"value": "Kitchen Light", "text": "kitchen light", "entity_ids": ["light.kitchen"]}}}

MESSAGES = [
    BridgeStatus("online", "hearth-test", PROTOCOL_VERSION, "0.1.0", "hearth",
                 {"stt": {"name": "pocketsphinx", "locality": "in_process"}}, "http://127.0.0.1:8765", 10700),
    BridgeStatus("offline", "hearth-test"),
    BridgeError("bad_frame", "audio frame shorter than its header", "hearth/satellite/k/audio", "k", None),
    SatelliteState("listening", "s1", False, "hearth", True, {"session_id": "s0", "engine": "pocketsphinx"}),
    WakeMessage("s1", "kitchen", "okay_nabu", "bridge"),
    TranscriptMessage("s1", "kitchen", "turn on the kitchen light", False, 0.9123, 1.5, 140.2, "pocketsphinx",
                      "in_process", False, dict(TIMINGS), 0.0712),
    IntentMessage("s1", "kitchen", "turn on the kitchen light", dict(INTENT), 0.9123, False, False, dict(TIMINGS)),
    IntentMessage("s2", "kitchen", "", None, 0.2, True, True, dict(TIMINGS)),
    SatelliteError("s1", "kitchen", "no_speech", "no speech heard after the wake word", True),
    SatelliteError(None, "kitchen", "gap", "2 frame(s) missing", False),
    Command("mute"),
    Command("stop_streaming", "s1"),
    Command("stop_playback"),
    PolicyResult("r1", True, None, {"revision": 3}),
    PolicyResult(7, False, "unknown key 'x'", {"revision": 3}),
    PolicyResult("r2", True, None, {"revision": 3}, purged=12),
    SatelliteEvent("wake", wake_word="okay_nabu", stream_id=42),
    SatelliteEvent("played", play_id="abc"),
    SatelliteEvent("stop"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_through_json(message: object) -> None:
    wire = json.loads(json.dumps(message.to_json()))  # type: ignore[attr-defined]
    assert type(message).from_json(wire) == message  # type: ignore[attr-defined]


def test_wire_shapes_are_the_documented_ones() -> None:
    assert set(MESSAGES[5].to_json()) == {"session_id", "satellite", "text", "rejected", "confidence",
                                          "audio_seconds", "latency_ms", "engine", "locality", "private",
                                          "timings", "cpu_seconds"}
    assert MESSAGES[1].to_json() == {"state": "offline", "protocol": PROTOCOL_VERSION, "bridge_id": "hearth-test"}
    assert Command("stop_playback").to_json() == {"command": "stop_playback"}
    assert Command("mute").to_json() == {"command": "mute", "session_id": None}
    assert "purged" not in PolicyResult("r", True, None, {}).to_json()


def test_satellite_status_keeps_only_what_the_bridge_can_use() -> None:
    status = SatelliteStatus.from_json({
        "state": "online", "capabilities": {"wake_word": True, "barge_in": True},
        "wake_word": "hey_siri", "play_rate": 96000, "area": "kitchen", "name": "Kitchen"})
    assert status.online and status.on_device_wake and status.barge_in
    assert status.wake_word is None  # not a model the bridge has
    assert status.play_rate is None  # out of 8000-48000
    assert status.area == "kitchen"
    assert status.info["name"] == "Kitchen"
    again = SatelliteStatus.from_json(SatelliteStatus.from_json({"state": "offline", "wake_word": "alexa",
                                                                 "play_rate": 22050}).to_json())
    assert (again.online, again.wake_word, again.play_rate) == (False, "alexa", 22050)


@pytest.mark.parametrize(("cls", "data", "code"), [
    (SatelliteStatus, {"state": "maybe"}, "bad_status"),
    (SatelliteStatus, {}, "bad_status"),
    (SatelliteEvent, {"type": "explode"}, "bad_event"),
    (SatelliteEvent, {}, "bad_event"),
    (Command, {"command": "self_destruct"}, "bad_command"),
    (BridgeStatus, {"state": 1}, "bad_status"),
])
def test_malformed_inbound_gives_a_coded_error(cls: type, data: dict, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        cls.from_json(data)
    assert err.value.code == code


def test_wrongly_typed_fields_are_ignored_not_trusted() -> None:
    event = SatelliteEvent.from_json({"type": "wake", "wake_word": 5, "stream_id": "7"})
    assert event.wake_word is None and event.stream_id is None
    assert SatelliteEvent.from_json({"type": "wake", "stream_id": True}).stream_id is None
