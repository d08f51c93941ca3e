"""Commands that need more certainty before the bridge acts: sensitive ones (unlock, open the
garage) and broad ones (devices that were not named: a whole area, floor or home)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.signing import signed


@asynccontextmanager
async def _bridge_demanding(tmp_path, setting: str, sat_id: str) -> AsyncIterator[tuple[SatelliteOptions, Probe]]:
    """A real broker and bridge that demands certainty (1.0) for `setting`, so the refusal path
    is exercised with real speech; yields the satellite's options and a probe on its topics.

    The satellite's `confirm` setting is `never`: what the bridge would otherwise ask about
    (tests/bridge/test_dialogue.py) is refused."""
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data",
                           args=["--set", f"recognition.{setting}=1.0"]).start()
    try:
        opts = SatelliteOptions(sat_id=sat_id, host=broker.host, port=broker.port, timeout=20)
        async with Probe(broker.host, broker.port, [f"hearth/satellite/{sat_id}/#"]) as probe:
            topic = f"hearth/satellite/{sat_id}/settings/set"
            await probe.client.publish(topic, signed(bridge.data_dir, topic, {"request_id": "c", "confirm": "never"}))
            await probe.wait_for("/settings/result", lambda d: d["ok"] and d["settings"]["confirm"] == "never")
            yield opts, probe
    finally:
        bridge.stop()
        broker.close()


async def _refused(opts: SatelliteOptions, probe: Probe, wav, code: str) -> dict:
    """Say `wav`; check it was published as rejected, without an intent; return the error."""
    result = await run_satellite(opts, load_wav_pcm16k(wav))
    assert result["transcript"] == "" and result["rejected"] is True
    assert result.get("intent") is None
    return await probe.wait_for(f"/{opts.sat_id}/error", lambda d: d["code"] == code)


async def test_unsure_unlock_is_refused_but_ordinary_commands_pass(tmp_path, say) -> None:
    async with _bridge_demanding(tmp_path, "sensitive_confidence", "door") as (opts, probe):
        error = await _refused(opts, probe, say("unlock the front door"), "sensitive_unsure")
        assert "HassTurnOff" in error["message"] and "unlock" not in error["message"]
        light = await run_satellite(opts, load_wav_pcm16k(say("turn on the kitchen light")))
        assert light["transcript"] == "turn on the kitchen light"
        assert light["intent"]["name"] == "HassTurnOn"


async def test_unsure_broad_action_is_refused_but_named_devices_pass(tmp_path, say) -> None:
    """An action on no named device (here: every kitchen light) needs recognition.broad_confidence."""
    async with _bridge_demanding(tmp_path, "broad_confidence", "hall") as (opts, probe):
        error = await _refused(opts, probe, say("turn off the lights in the kitchen"), "broad_unsure")
        assert "HassTurnOff" in error["message"] and "kitchen" not in error["message"]
        light = await run_satellite(opts, load_wav_pcm16k(say("turn off the kitchen light")))
        assert light["transcript"] == "turn off the kitchen light"
        assert light["intent"]["name"] == "HassTurnOff" and light["intent"]["broad"] is False
