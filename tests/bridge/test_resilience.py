"""The broker goes away and comes back; the bridge reconnects and serves the next utterance."""

from __future__ import annotations

import asyncio
import json

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, wait_for_retained
from tests.support.broker import Mosquitto


async def test_broker_restart_mid_stream_then_next_utterance(tmp_path, say) -> None:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data").start()
    try:
        pcm = load_wav_pcm16k(say("turn on the kitchen light"))
        opts = SatelliteOptions(sat_id="restart", host=broker.host, port=broker.port, timeout=5)
        streaming = asyncio.create_task(run_satellite(opts, pcm))
        await asyncio.sleep(1.0)  # mid-utterance
        assert broker.proc is not None
        broker.proc.kill()  # a blip: no last wills delivered; same port, retained messages gone (no persistence)
        await asyncio.to_thread(broker.proc.wait)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(broker.start)
        result = await asyncio.gather(streaming, return_exceptions=True)
        assert isinstance(result[0], Exception)  # that utterance is lost with the broker
        # The bridge comes back by itself: status re-published (retained), subscriptions restored.
        status = await asyncio.to_thread(wait_for_retained, broker.host, broker.port, "hearth/bridge/status",
                                         lambda d: d.get("state") == "online", 30.0)
        assert status["protocol"] == 1
        # The interrupted session was closed when the link dropped, not by its audio timeout
        # seconds later (a fatal error with its id would then end the satellite's next command).
        stats = await asyncio.to_thread(wait_for_retained, broker.host, broker.port, "hearth/bridge/stats",
                                        lambda d: "broker_disconnected" in d.get("errors", {}), 15.0)
        assert "audio_timeout" not in stats["errors"], stats["errors"]
        policy = await asyncio.to_thread(wait_for_retained, broker.host, broker.port, "hearth/bridge/policy/state",
                                         lambda d: "local_only" in d, 10.0)
        assert policy["local_only"] is True
        opts.timeout = 20
        result2 = await run_satellite(opts, pcm)
        assert result2["transcript"] == "turn on the kitchen light"
    finally:
        bridge.stop()
        broker.close()


async def test_last_will_marks_the_bridge_offline(tmp_path) -> None:
    import signal

    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data").start()
    try:
        bridge.stop(signal.SIGKILL)
        status = await asyncio.to_thread(wait_for_retained, broker.host, broker.port, "hearth/bridge/status",
                                         lambda d: d.get("state") == "offline", 60.0)
        assert status["bridge_id"]
    finally:
        bridge.stop()
        broker.close()


def test_bridge_starts_before_the_broker(tmp_path) -> None:
    from tests.support.broker import free_port

    port = free_port()
    bridge = BridgeProcess("127.0.0.1", port, tmp_path / "data").start(wait=False)
    broker = Mosquitto(port=port)
    try:
        import time

        time.sleep(3)
        broker.start()
        status = bridge.wait_online(60)
        assert json.loads(json.dumps(status))["state"] == "online"
    finally:
        bridge.stop()
        broker.close()
