"""A new vocabulary over MQTT: compiled in the background, swapped atomically; bad ones rejected."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
import yaml

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import Probe

DEMO = yaml.safe_load((Path(__file__).resolve().parents[2] / "bridge/data/demo_home.yaml").read_text())


def with_conservatory() -> dict:
    vocab = copy.deepcopy(DEMO)
    vocab["areas"].append({"id": "conservatory", "name": "Conservatory"})
    vocab["entities"].append({"id": "light.conservatory", "name": "Conservatory light", "domain": "light",
                              "area": "conservatory", "aliases": ["glasshouse light"]})
    return vocab


async def test_vocabulary_swap_under_load_drops_nothing(live, say) -> None:
    broker, _ = live
    kitchen = load_wav_pcm16k(say("turn on the kitchen light"))
    new_name = load_wav_pcm16k(say("turn on the conservatory light"))
    async with Probe(broker.host, broker.port, ["hearth/bridge/vocabulary/state"]) as probe:
        first = await probe.wait_for("vocabulary/state", lambda d: d["status"] == "ok")
        opts = [SatelliteOptions(sat_id=f"swap{i}", host=broker.host, port=broker.port, timeout=30) for i in range(3)]
        in_flight = [asyncio.create_task(run_satellite(o, kitchen)) for o in opts]
        await asyncio.sleep(1.0)  # all three are mid-utterance
        await probe.client.publish("hearth/bridge/vocabulary/set", json.dumps(with_conservatory()), retain=True)
        results = await asyncio.gather(*in_flight)
        assert [r["transcript"] for r in results] == ["turn on the kitchen light"] * 3
        swapped = await probe.wait_for("vocabulary/state", lambda d: d["status"] == "ok" and d["hash"] != first["hash"], 60)
        assert swapped["entities"] == len(DEMO["entities"]) + 1
    result = await run_satellite(SatelliteOptions(sat_id="swap-new", host=broker.host, port=broker.port, timeout=30), new_name)
    assert result["transcript"] == "turn on the conservatory light"
    assert "light.conservatory" in json.dumps(result["intent"])


def _bad(mutate) -> dict:
    vocab = copy.deepcopy(DEMO)
    mutate(vocab)
    return vocab


BAD = [
    ("not_json", b"{this is not json", "not valid JSON"),
    ("missing_entities", json.dumps(_bad(lambda v: v.pop("entities"))).encode(), "entities"),
    ("duplicate_ids", json.dumps(_bad(lambda v: v["entities"].append(dict(v["entities"][0])))).encode(), "duplicate"),
    ("empty_name", json.dumps(_bad(lambda v: v["entities"][0].update(name="  "))).encode(), "name"),
    ("absurd_size", json.dumps(_bad(lambda v: v.update(entities=[
        {"id": f"light.l{i}", "name": f"Lamp {i}", "domain": "light"} for i in range(5000)]))).encode(), "entities"),
    ("unknown_area", json.dumps(_bad(lambda v: v["entities"][0].update(area="attic"))).encode(), "area"),
]


@pytest.mark.parametrize(("name", "payload", "mentions"), BAD, ids=[b[0] for b in BAD])
async def test_bad_vocabulary_rejected_old_grammar_keeps_serving(live, say, name, payload, mentions) -> None:
    broker, _ = live
    async with Probe(broker.host, broker.port, ["hearth/bridge/vocabulary/state", "hearth/bridge/error"]) as probe:
        before = await probe.wait_for("vocabulary/state", lambda d: "hash" in d)
        probe.messages.clear()
        await probe.client.publish("hearth/bridge/vocabulary/set", payload)
        state = await probe.wait_for("vocabulary/state", lambda d: d["status"] == "error", 30)
        assert mentions.lower() in state["error"].lower()
        assert state["hash"] == before["hash"]  # the grammar in service did not change
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    result = await run_satellite(SatelliteOptions(sat_id=f"after-{name}", host=broker.host, port=broker.port, timeout=30), pcm)
    assert result["transcript"] == "turn on the kitchen light"


async def test_the_vocabulary_in_service_sent_again_clears_an_error(live) -> None:
    """A rejected vocabulary leaves `vocabulary/state` at "error"; sending the one in service again
    (what Home Assistant's re-sync does) puts it back to "ok", though nothing is compiled."""
    broker, _ = live
    demo = json.dumps(DEMO).encode()
    async with Probe(broker.host, broker.port, ["hearth/bridge/vocabulary/state"]) as probe:
        await probe.client.publish("hearth/bridge/vocabulary/set", demo)
        serving = await probe.wait_for("vocabulary/state", lambda d: d["status"] == "ok" and d["entities"] == len(DEMO["entities"]), 60)
        probe.messages.clear()
        await probe.client.publish("hearth/bridge/vocabulary/set", b"{this is not json")
        await probe.wait_for("vocabulary/state", lambda d: d["status"] == "error", 30)
        probe.messages.clear()
        await probe.client.publish("hearth/bridge/vocabulary/set", demo)
        cleared = await probe.wait_for("vocabulary/state", lambda d: d["status"] == "ok", 30)
        assert cleared == serving
