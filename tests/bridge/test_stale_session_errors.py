"""A fatal error for another session does not end a satellite's command (issue: a broker blip).

After a short broker outage the bridge used to close the interrupted session only at its audio
timeout, and publish its fatal error, with the old session id, just as the reconnected satellite
began its next command; the simulated satellite ended its new stream on any fatal error. Here a
stand-in for the bridge (a plain MQTT client on a real broker) sends exactly that: the simulated
satellite must finish its own session. The satellite program's side is tests/satellite.
"""

from __future__ import annotations

import asyncio
import json

from bridge.service.link import Connection
from bridge.settings import MqttSettings
from bridge.tools.satellite import SatelliteOptions, run_satellite
from tests.support.broker import Mosquitto

SAT = "blip"


async def _stand_in_bridge(port: int, ready: asyncio.Event) -> None:
    def topic(leaf: str) -> str:
        return f"hearth/satellite/{SAT}/{leaf}"

    def stale_error(code: str) -> bytes:
        return json.dumps({"session_id": "stale", "satellite": SAT, "code": code, "message": "late",
                           "fatal": True}).encode()

    async with Connection(MqttSettings(port=port), "stand-in-bridge") as bridge:
        # What the broker holds after the outage: the interrupted session, retained as listening.
        await bridge.publish(topic("state"), json.dumps({"state": "listening", "session_id": "stale"}).encode(),
                             retain=True)
        await bridge.subscribe(topic("event"))
        ready.set()
        async for message in bridge.messages():
            if json.loads(message.payload).get("type") != "wake":
                continue
            await bridge.publish(topic("error"), stale_error("audio_timeout"))  # before the new session is named
            await bridge.publish(topic("wake"), json.dumps({"session_id": "new", "satellite": SAT}).encode())
            await bridge.publish(topic("error"), stale_error("broker_disconnected"))  # after it
            await asyncio.sleep(0.3)
            await bridge.publish(topic("transcript"), json.dumps({"session_id": "new", "text": "turn on the light"}).encode())
            await bridge.publish(topic("intent"), json.dumps({"session_id": "new", "intent": {"name": "HassTurnOn"}}).encode())


async def test_the_simulated_satellite_ignores_another_sessions_fatal_error(mosquitto: Mosquitto) -> None:
    ready = asyncio.Event()
    stand_in = asyncio.create_task(_stand_in_bridge(mosquitto.port, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        options = SatelliteOptions(sat_id=SAT, host=mosquitto.host, port=mosquitto.port, timeout=5, realtime=False,
                                   trailing_silence=0.1, end_of_speech=0.1)
        result = await run_satellite(options, bytes(6400))
    finally:
        stand_in.cancel()
        await asyncio.gather(stand_in, return_exceptions=True)
    assert result["transcript"] == "turn on the light"
    assert result["session_id"] == "new"
    assert "error" not in result
