"""Hearth's wire payloads (bridge.protocol.messages): each round-trips, and inbound ones refuse
what is malformed with a coded error."""

from __future__ import annotations

import json

import pytest

from bridge import PROTOCOL_VERSION
from bridge.protocol import hermes
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
    PolicyResult("r3", True, None, {"revision": 4}, saved=False),
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
    assert "saved" not in PolicyResult("r", True, None, {}).to_json()
    assert PolicyResult("r", True, None, {}, saved=False).to_json()["saved"] is False


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


# -- Hermes ------------------------------------------------------------------------------------

HERMES_MESSAGES = [
    hermes.Toggle("esp32", "dialogueSession"),
    hermes.HotwordDetected("esp32", "okay_nabu", "s1", 0.5),
    hermes.TextCaptured("esp32", "s1", "turn on the light", 0.8, 1.2, "okay_nabu", "en"),
    hermes.HermesError("esp32", None, "speech was not recognized as a command", "asr"),
    hermes.IntentParsed("esp32", "s1", "r1", "turn on the light", "HassTurnOn", 1.0,
                        (hermes.Slot("name", "Light", "light", "light.kitchen"),)),
    hermes.IntentNotRecognized("esp32", "s1", None, "make me a sandwich"),
    hermes.PlayFinished("esp32", "req-7", "s1"),
    hermes.Esp32Mute(True),
    hermes.StartListening("esp32", "s1", "en", "okay_nabu"),
    hermes.NluQuery("esp32", "turn on the light", "r2", None),
    hermes.SiteRequest("esp32", "s1"),
]


@pytest.mark.parametrize("message", HERMES_MESSAGES, ids=lambda m: type(m).__name__)
def test_hermes_round_trip_through_json(message: object) -> None:
    wire = json.loads(json.dumps(message.to_json()))  # type: ignore[attr-defined]
    cls = type(message)
    again = cls.from_json(wire, "hermes/x") if cls is hermes.SiteRequest else cls.from_json(wire)  # type: ignore[attr-defined]
    assert again == message


def test_hermes_wire_keys_are_camel_case() -> None:
    parsed = HERMES_MESSAGES[4].to_json()
    assert parsed["intent"] == {"intentName": "HassTurnOn", "confidenceScore": 1.0}
    assert parsed["slots"][0]["slotName"] == "name" and parsed["slots"][0]["value"] == {"kind": "Unknown", "value": "Light"}  # type: ignore[index]
    assert HERMES_MESSAGES[7].to_json() == {"mute_input": "true"}
    assert HERMES_MESSAGES[2].to_json()["asrTokens"][0][1]["value"] == "on"  # type: ignore[index]


@pytest.mark.parametrize(("cls", "data"), [
    (hermes.StartListening, {"siteId": 5}),
    (hermes.NluQuery, {"siteId": "a"}),
    (hermes.NluQuery, {"siteId": "a", "input": 3}),
    (hermes.IntentParsed, {"siteId": "a", "intent": {}}),
])
def test_hermes_malformed_requests_are_refused(cls: type, data: dict) -> None:
    with pytest.raises(ProtocolError) as err:
        cls.from_json(data)
    assert err.value.code == "invalid_json"


def test_a_hermes_site_defaults_like_rhasspy() -> None:
    assert hermes.StartListening.from_json({}).site_id == "default"
