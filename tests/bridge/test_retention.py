"""Retention "memory": the last utterances are kept in memory only, served to the owner, purged on demand."""

from __future__ import annotations

import io
import json
import urllib.request
import wave

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe, wait_for_retained
from tests.support.signing import signed
from tests.support.broker import Mosquitto


def get(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=5).read()  # noqa: S310 - loopback


async def test_memory_retention_keeps_serves_and_purges(tmp_path, say) -> None:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data").start()
    try:
        api = wait_for_retained(broker.host, broker.port, "hearth/bridge/status", lambda d: d.get("state") == "online")["status_api"]
        pcm = load_wav_pcm16k(say("turn on the kitchen light"))
        opts = SatelliteOptions(sat_id="debug", host=broker.host, port=broker.port, timeout=20)
        await run_satellite(opts, pcm)
        assert json.loads(get(api + "/retention"))["utterances"] == []  # default: keep nothing

        async with Probe(broker.host, broker.port, ["hearth/bridge/policy/result"]) as probe:
            await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
                                                                          {"request_id": "r1", "retention": "memory"}))
            await probe.wait_for("policy/result", lambda d: d["request_id"] == "r1" and d["ok"])
            result = await run_satellite(opts, pcm)
            kept = json.loads(get(api + "/retention"))["utterances"]
            assert [u["session_id"] for u in kept] == [result["session_id"]]
            assert 1.0 < kept[0]["seconds"] < 6.0
            with wave.open(io.BytesIO(get(api + "/retention/0.wav"))) as wav:
                assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
                assert abs(wav.getnframes() / 16000 - kept[0]["seconds"]) < 0.01

            await probe.client.publish("hearth/bridge/history/purge", signed(bridge.data_dir, "hearth/bridge/history/purge",
                                                                             {"request_id": "p1"}))
            await probe.wait_for("policy/result", lambda d: d["request_id"] == "p1" and d["ok"])
            assert json.loads(get(api + "/retention"))["utterances"] == []

            await run_satellite(opts, pcm)
            assert len(json.loads(get(api + "/retention"))["utterances"]) == 1
            # Back to "none": what was kept is wiped at once.
            await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
                                                                          {"request_id": "r2", "retention": "none"}))
            await probe.wait_for("policy/result", lambda d: d["request_id"] == "r2" and d["ok"])
            assert json.loads(get(api + "/retention"))["utterances"] == []
    finally:
        bridge.stop()
        broker.close()
    # and nothing of it ever reached the data folder
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert b"RIFF" not in path.read_bytes()
