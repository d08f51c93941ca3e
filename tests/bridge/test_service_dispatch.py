"""The bridge's dispatcher and its parts, in process: no broker, no decoder workers.

`build_bridge` makes a real bridge that is never started; messages go in through `dispatch` and
what it would publish is read from the MQTT link's outgoing queue. This covers routing, the
satellite table, policy commands and mutes, the Hermes adapter's site rules and result
publishing, fast and without timing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.engines import IntentResult, SlotValue, Transcript
from bridge.protocol import hermes
from bridge.protocol.hearth import encode_frame
from bridge.satellite import Protocol, SessionSource, Timings
from bridge.service import Bridge
from tests.support.inprocess import close_in_process, in_process_bridge, on, send_signed, sent


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    made = in_process_bridge(tmp_path, limits={"max_satellites": 3})
    yield made
    await close_in_process(made)






def status(bridge: Bridge, sat_id: str, **extra: object) -> None:
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", json.dumps({"state": "online", **extra}).encode())


async def test_a_satellite_announces_itself_and_its_state_is_published(bridge: Bridge) -> None:
    status(bridge, "kitchen", capabilities={"wake_word": True, "barge_in": True}, wake_word="hey_jarvis",
           play_rate=22050, area="kitchen")
    sat = bridge.satellites["kitchen"]
    assert (sat.protocol, sat.on_device_wake, sat.barge_in, sat.wake_word, sat.play_rate, sat.area) == (
        Protocol.HEARTH, True, True, "hey_jarvis", 22050, "kitchen")
    (state,) = on(sent(bridge), "hearth/satellite/kitchen/state")
    assert state == {"state": "idle", "session_id": None, "muted": False, "protocol": "hearth", "online": True,
                     "last": {}, "settings": {"wake_word": None, "sensitivity": "default", "confirm": "unsure"}}


async def test_bad_messages_give_coded_errors_and_the_rest_is_served(bridge: Bridge) -> None:
    bridge.dispatch("hearth/satellite/ghost/audio", encode_frame(1, 0, bytes(960)))
    bridge.dispatch("hearth/satellite/kitchen/status", b"{not json")
    bridge.dispatch("hearth/satellite/bad id!/status", b"{}")
    bridge.dispatch("hearth/satellite/kitchen/whatever", b"{}")
    bridge.dispatch("hearth/bridge/policy/set", bytes(70000))
    codes = [e["code"] for e in on(sent(bridge), "hearth/bridge/error")]
    assert codes == ["unknown_satellite", "invalid_json", "bad_satellite_id", "bad_topic", "oversized"]
    status(bridge, "kitchen")
    assert "kitchen" in bridge.satellites


async def test_the_satellite_table_is_bounded(bridge: Bridge) -> None:
    for index in range(4):
        status(bridge, f"s{index}")
    assert sorted(bridge.satellites) == ["s0", "s1", "s2"]
    assert [e["code"] for e in on(sent(bridge), "hearth/bridge/error")] == ["too_many_satellites"]


async def test_a_mute_is_saved_confirmed_told_and_drops_frames(bridge: Bridge, tmp_path: Path) -> None:
    status(bridge, "kitchen")
    sent(bridge)
    send_signed(bridge, "hearth/bridge/policy/set", json.dumps(
        {"request_id": "r1", "microphones": {"kitchen": {"muted": True}}}).encode())
    out = sent(bridge)
    (result,) = on(out, "hearth/bridge/policy/result")
    assert result["request_id"] == "r1" and result["ok"] is True, result
    assert on(out, "hearth/satellite/kitchen/command") == [{"command": "mute", "session_id": None}]
    assert on(out, "hearth/satellite/kitchen/state")[-1]["muted"] is True
    assert "kitchen" in (tmp_path / "policy.json").read_text()
    bridge.dispatch("hearth/satellite/kitchen/audio", encode_frame(1, 0, bytes(960)))
    assert bridge.control.dropped_muted == 1
    assert bridge.satellites["kitchen"].queue == type(bridge.satellites["kitchen"].queue)()


async def test_a_bad_policy_command_is_refused_with_the_policy_unchanged(bridge: Bridge) -> None:
    before = bridge.policy
    send_signed(bridge, "hearth/bridge/policy/set", json.dumps({"request_id": 5, "no_such_key": 1}).encode())
    (result,) = on(sent(bridge), "hearth/bridge/policy/result")
    assert result["ok"] is False and result["request_id"] == 5 and result["error"]
    assert bridge.policy == before


async def test_hermes_sites_cannot_take_a_hearth_satellite(bridge: Bridge) -> None:
    status(bridge, "kitchen")
    from bridge.audio.wav import make_wav

    bridge.dispatch("hermes/audioServer/kitchen/audioFrame", make_wav(bytes(512)))
    assert bridge.satellites["kitchen"].protocol is Protocol.HEARTH
    assert bridge.hermes.site("kitchen", create=True) is None
    bridge.dispatch("hermes/audioServer/porch/audioFrame", make_wav(bytes(512)))
    assert bridge.satellites["porch"].protocol is Protocol.HERMES


async def test_pipeline_mode_is_set_and_cleared(bridge: Bridge) -> None:
    bridge.dispatch("hearth/satellite/kitchen/pipeline/set", b'{"mode": "assist"}')
    assert bridge.dispatcher.pipeline_modes == {"kitchen": "assist"}
    bridge.dispatch("hearth/satellite/kitchen/pipeline/set", b"")
    assert bridge.dispatcher.pipeline_modes == {}
    bridge.dispatch("hearth/satellite/kitchen/pipeline/set", b'{"mode": "cloud"}')
    assert [e["code"] for e in on(sent(bridge), "hearth/bridge/error")] == ["bad_pipeline_mode"]


async def test_a_result_is_published_once_with_the_engines_intent(bridge: Bridge) -> None:
    bridge.dispatch(hermes.START_LISTENING, json.dumps({"siteId": "porch", "sessionId": "h1"}).encode())
    sat = bridge.satellites["porch"]
    from bridge.satellite import Session

    class NoStream:  # the result comes from the engine; nothing is fed here
        complete = False

    session = Session(id="h1", source=SessionSource.COMMAND, wake_word=None, stream=NoStream(),  # type: ignore[arg-type]
                      endpointer=None, audio_bytes=32000)  # type: ignore[arg-type]
    intent = IntentResult("HassTurnOn", 1.0, slots=(SlotValue("name", "Porch Light", "porch light", ("light.porch",)),))
    transcript = Transcript("turn on the porch light", 0.9, intent=intent, intent_checked=True, intent_cpu_seconds=0.004)

    async def no_second_round_trip(*_args: object) -> None:
        raise AssertionError("the intent came with the transcript; it must not be asked for again")

    bridge.pool.recognize_intent = no_second_round_trip  # type: ignore[method-assign,assignment]
    sent(bridge)
    await bridge.deliver(sat, session, transcript, Timings(120.0, 100.0, 20.0, "complete"))
    out = sent(bridge)
    (published,) = on(out, "hearth/satellite/porch/intent")
    assert published["intent"] == intent.to_json()
    assert published["timings"]["intent_ms"] == 4.0  # type: ignore[index]
    (text,) = on(out, "hearth/satellite/porch/transcript")
    assert text["latency_ms"] == 120.0  # nothing waited for after the transcript
    (parsed,) = on(out, hermes.INTENT_PARSED)
    assert parsed["slots"][0]["entity"] == "light.porch"  # type: ignore[index]
    assert on(out, hermes.TEXT_CAPTURED)[0]["text"] == "turn on the porch light"
    assert bridge.audit.to_json()["recent"][-1]["engines"][-1]["name"] == "hassil"  # type: ignore[index]


async def test_a_doubtful_sensitive_command_is_refused(bridge: Bridge) -> None:
    status(bridge, "garage")
    sat = bridge.satellites["garage"]
    from bridge.satellite import Session

    session = Session(id="g1", source=SessionSource.BRIDGE, wake_word="okay_nabu", stream=None,  # type: ignore[arg-type]
                      endpointer=None)  # type: ignore[arg-type]
    intent = IntentResult("HassTurnOn", 1.0, sensitive=True)
    sent(bridge)
    await bridge.deliver(sat, session, Transcript("open the garage door", 0.4, intent=intent, intent_checked=True),
                         Timings(100.0, 90.0, 10.0, "silence"))
    out = sent(bridge)
    (published,) = on(out, "hearth/satellite/garage/intent")
    assert published["intent"] is None and published["rejected"] is True
    assert on(out, "hearth/satellite/garage/transcript")[0]["text"] == ""
    assert "sensitive_unsure" in [e["code"] for e in on(out, "hearth/bridge/error")]


async def test_nothing_is_attached_from_outside(bridge: Bridge) -> None:
    assert bridge.speech_out.tts is None and bridge.tts is None
    assert bridge.forward_stt is not None and bridge.gate is not None
    await asyncio.sleep(0)
