"""Against a real Mosquitto and a real bridge process: Hermes sites under the one id rule.

A Hermes site named `living.room` is served and can be muted with a policy command naming it:
its frames are then dropped and counted, and it is told to mute. A Hermes `tts/say` for a Hearth
satellite's id is refused (counted as `hermes_site_conflict`, told on `hermes/error/tts`) and the
Hearth satellite plays nothing, while the same say for a Hermes site is spoken.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.audio.wav import make_wav
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.signing import signed
from tests.support.broker import Mosquitto

WATCH = ["hearth/#", "hermes/#", "+/audio"]  # `<siteId>/audio`: the ESP32 firmware's mute_input


@dataclass
class Live:
    broker: Mosquitto
    bridge: BridgeProcess
    status_api: str

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.status_api}{path}", timeout=5) as response:
            data = json.loads(response.read())
        assert isinstance(data, dict)
        return data

    async def until(self, path: str, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ANN401
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.to_thread(self.get, path)
            if predicate(data):
                return data
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: {data}")
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("hermes-live") / "data")
    try:
        status = bridge.start().wait_online()
        yield Live(broker, bridge, status["status_api"])
    finally:
        bridge.stop()
        broker.close()


async def set_policy(probe: Probe, command: dict[str, Any], live: Live) -> dict[str, Any]:
    request_id = uuid.uuid4().hex[:8]
    await probe.client.publish("hearth/bridge/policy/set", signed(live.bridge.data_dir, "hearth/bridge/policy/set",
                                                                  {"request_id": request_id, **command}), qos=1)
    result = await probe.wait_for("hearth/bridge/policy/result", lambda d: d.get("request_id") == request_id)
    assert result["ok"] is True, result
    return result


async def test_a_dotted_hermes_site_is_muted(live: Live) -> None:
    frame = make_wav(bytes(1024))  # 32 ms of silence at 16 kHz
    async with Probe(live.broker.host, live.broker.port, WATCH) as probe:
        await probe.client.publish("hermes/audioServer/living.room/audioFrame", frame)
        await live.until("/status", lambda d: "living.room" in d["satellites"])
        result = await set_policy(probe, {"microphones": {"living.room": {"muted": True}}}, live)
        assert result["policy"]["microphones"]["living.room"]["muted"] is True
        await probe.wait_for("living.room/audio", lambda d: d.get("mute_input") == "true")
        await probe.wait_for("hearth/satellite/living.room/state", lambda d: d.get("muted") is True)
        before = (await asyncio.to_thread(live.get, "/stats"))["dropped_muted"]
        for _ in range(20):
            await probe.client.publish("hermes/audioServer/living.room/audioFrame", frame)
            await asyncio.sleep(0.02)
        stats = await live.until("/stats", lambda d: d["dropped_muted"] >= before + 20)
        assert stats["errors"].get("muted", 0) >= 20
        assert stats["satellites"]["living.room"]["protocol"] == "hermes"
        status = await asyncio.to_thread(live.get, "/status")
        assert status["satellites"]["living.room"]["muted"] is True
        assert not [t for t, _ in probe.messages if t in ("hearth/satellite/living.room/transcript",
                                                          "hearth/satellite/living.room/wake")]
        await set_policy(probe, {"microphones": {"living.room": {"muted": False}}}, live)


async def test_hermes_say_for_a_hearth_satellite_is_refused(live: Live) -> None:
    async with Probe(live.broker.host, live.broker.port, WATCH) as probe:
        await probe.client.publish("hearth/satellite/kitchen/status", json.dumps({"state": "online"}), qos=1)
        await live.until("/status", lambda d: d["satellites"].get("kitchen", {}).get("protocol") == "hearth")
        await probe.client.publish("hermes/tts/say", json.dumps(
            {"siteId": "kitchen", "text": "the front door is open", "id": "say-hearth"}), qos=1)
        error = await probe.wait_for("hearth/bridge/error", lambda d: d.get("code") == "hermes_site_conflict")
        assert error["satellite"] is None and "kitchen" in error["message"]
        notice = await probe.wait_for("hermes/error/tts", lambda d: d.get("siteId") == "kitchen")
        assert notice["context"] == "hermes_site_conflict"
        # The same request for a Hermes site is spoken: the voice works, so the refusal is the rule.
        await probe.client.publish("hermes/tts/say", json.dumps(
            {"siteId": "porch", "text": "the front door is open", "id": "say-hermes"}), qos=1)
        deadline = time.monotonic() + 20
        while not [t for t, _ in probe.messages if t.startswith("hermes/audioServer/porch/playBytes/")]:
            assert time.monotonic() < deadline, probe.messages[-10:]
            await asyncio.sleep(0.05)
        topics = [t for t, _ in probe.messages]
        assert not [t for t in topics if t in ("hearth/satellite/kitchen/play", "hearth/satellite/kitchen/error")]
        assert not [d for d in probe.json("hermes/tts/sayFinished") if d.get("id") == "say-hearth"]
        stats = await asyncio.to_thread(live.get, "/stats")
        assert stats["errors"]["hermes_site_conflict"] >= 1
        assert stats["satellites"]["kitchen"]["protocol"] == "hearth"
