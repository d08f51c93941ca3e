"""Hermes NLU: intents for text from other Hermes tools, checked field by field."""

from __future__ import annotations

import asyncio
import json

from tests.support.bridge_proc import Probe


async def test_nlu_query_gets_intent_parsed_and_intent_topic(live) -> None:
    broker, _ = live
    async with Probe(broker.host, broker.port, ["hermes/nlu/#", "hermes/intent/#"]) as probe:
        await probe.client.publish("hermes/nlu/query", json.dumps({
            "input": "turn on the kitchen light", "siteId": "lounge", "id": "q-17", "sessionId": "s-5",
            "intentFilter": None}))
        parsed = await probe.wait_for("hermes/nlu/intentParsed", lambda d: d["id"] == "q-17")
        assert parsed["input"] == "turn on the kitchen light"
        assert parsed["siteId"] == "lounge" and parsed["sessionId"] == "s-5"
        assert parsed["intent"]["intentName"] == "HassTurnOn"
        assert 0 < parsed["intent"]["confidenceScore"] <= 1
        assert parsed["slots"], "slots must be present"
        for slot in parsed["slots"]:
            assert set(slot) >= {"entity", "slotName", "rawValue", "value", "confidence", "range"}
            assert "value" in slot["value"]
        # the entity the command resolves to is named in a slot
        assert any(slot["entity"].startswith("light.kitchen") for slot in parsed["slots"])
        same = await probe.wait_for("hermes/intent/HassTurnOn", lambda d: d["id"] == "q-17")
        assert same == parsed


async def test_nlu_query_that_is_not_a_command(live) -> None:
    broker, _ = live
    async with Probe(broker.host, broker.port, ["hermes/nlu/#"]) as probe:
        await probe.client.publish("hermes/nlu/query", json.dumps({
            "input": "i think we should order pizza tonight", "siteId": "lounge", "id": "q-18", "sessionId": "s-6"}))
        missed = await probe.wait_for("hermes/nlu/intentNotRecognized", lambda d: d["id"] == "q-18")
        assert missed["input"] == "i think we should order pizza tonight"
        assert missed["siteId"] == "lounge" and missed["sessionId"] == "s-6"
        assert not probe.json("hermes/nlu/intentParsed")


async def test_nlu_query_with_light_brightness(live) -> None:
    broker, _ = live
    async with Probe(broker.host, broker.port, ["hermes/nlu/intentParsed"]) as probe:
        await probe.client.publish("hermes/nlu/query", json.dumps({
            "input": "set the bedroom light to 40 percent", "siteId": "x", "id": "q-19", "sessionId": None}))
        parsed = await probe.wait_for("intentParsed", lambda d: d["id"] == "q-19")
        assert parsed["intent"]["intentName"] == "HassLightSet"
        slots = {s["slotName"]: s for s in parsed["slots"]}
        assert slots["brightness"]["value"]["value"] == 40


async def test_the_satellites_area_resolves_turn_on_the_lights(live, say) -> None:
    """A satellite that announced its area: "turn on the lights" means that area's lights."""
    from bridge.tools.satellite import load_wav_pcm16k
    from bridge.protocol.hearth import encode_frame

    broker, _ = live
    pcm = load_wav_pcm16k(say("turn on the lights"))
    status = {"state": "online", "protocol": 1, "area": "bedroom", "capabilities": {"wake_word": True}}
    async with Probe(broker.host, broker.port, ["hearth/satellite/upstairs/#"]) as probe:
        await probe.client.publish("hearth/satellite/upstairs/status", json.dumps(status), retain=True)
        await asyncio.sleep(0.3)
        await probe.client.publish("hearth/satellite/upstairs/event", json.dumps({"type": "wake", "stream_id": 4}))
        audio = pcm + bytes(32000)
        for seq, offset in enumerate(range(0, len(audio), 960)):
            await probe.client.publish("hearth/satellite/upstairs/audio", encode_frame(4, seq, audio[offset:offset + 960]))
            await asyncio.sleep(0.03)
        intent = await probe.wait_for("/upstairs/intent", timeout=20)
        assert intent["intent"]["name"] == "HassTurnOn", intent["text"]
        entity_ids = {e for slot in intent["intent"]["slots"].values() for e in slot["entity_ids"]}
        assert entity_ids == {"light.bedroom"}
