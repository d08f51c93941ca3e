"""Sensitive commands (unlock, open the garage) are only acted on when the recognizer is sure."""

from __future__ import annotations

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto


async def test_unsure_unlock_is_refused_but_ordinary_commands_pass(tmp_path, say) -> None:
    broker = Mosquitto().start()
    # Demand certainty for sensitive intents, so the refusal path is exercised with real speech.
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data",
                           args=["--set", "recognition.sensitive_confidence=1.0"]).start()
    try:
        opts = SatelliteOptions(sat_id="door", host=broker.host, port=broker.port, timeout=20)
        async with Probe(broker.host, broker.port, ["hearth/satellite/door/#"]) as probe:
            unlock = await run_satellite(opts, load_wav_pcm16k(say("unlock the front door")))
            assert unlock["transcript"] == "" and unlock["rejected"] is True
            assert unlock.get("intent") is None
            error = await probe.wait_for("/door/error", lambda d: d["code"] == "sensitive_unsure")
            assert "HassTurnOff" in error["message"] and "unlock" not in error["message"]
        light = await run_satellite(opts, load_wav_pcm16k(say("turn on the kitchen light")))
        assert light["transcript"] == "turn on the kitchen light"
        assert light["intent"]["name"] == "HassTurnOn"
    finally:
        bridge.stop()
        broker.close()


async def test_unsure_broad_action_is_refused_but_named_devices_pass(tmp_path, say) -> None:
    """An action on no named device (here: every kitchen light) needs recognition.broad_confidence."""
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data",
                           args=["--set", "recognition.broad_confidence=1.0"]).start()
    try:
        opts = SatelliteOptions(sat_id="hall", host=broker.host, port=broker.port, timeout=20)
        async with Probe(broker.host, broker.port, ["hearth/satellite/hall/#"]) as probe:
            lights = await run_satellite(opts, load_wav_pcm16k(say("turn off the lights in the kitchen")))
            assert lights["transcript"] == "" and lights["rejected"] is True
            assert lights.get("intent") is None
            error = await probe.wait_for("/hall/error", lambda d: d["code"] == "broad_unsure")
            assert "HassTurnOff" in error["message"] and "kitchen" not in error["message"]
        light = await run_satellite(opts, load_wav_pcm16k(say("turn off the kitchen light")))
        assert light["transcript"] == "turn off the kitchen light"
        assert light["intent"]["name"] == "HassTurnOff" and light["intent"]["broad"] is False
    finally:
        bridge.stop()
        broker.close()
