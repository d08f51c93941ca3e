"""The satellite reconnects after the broker restarts (announcing itself again), follows the wake
word Home Assistant chose, and its last will reads offline when it dies."""

from __future__ import annotations

import asyncio

import pytest

from tests.satellite.conftest import SatelliteProcess, wait_status
from tests.support.bridge_proc import Probe
from tests.support.signing import signed

pytestmark = pytest.mark.timeout(120)


async def test_reconnects_after_a_broker_restart_and_sets_its_last_will(live, say, tmp_path) -> None:
    broker, bridge = live
    sat = SatelliteProcess(broker, tmp_path, "pi-study", "--area", "office").start()
    try:
        async with Probe(broker.host, broker.port, ["hearth/satellite/pi-study/#"]) as probe:
            status = await wait_status(probe, "pi-study", state="online")
            assert status["area"] == "office"
        await asyncio.to_thread(broker.restart)  # without persistence: the retained status is gone
        async with Probe(broker.host, broker.port, ["hearth/satellite/pi-study/#"]) as probe:
            await wait_status(probe, "pi-study", state="online", timeout=20)
            await asyncio.to_thread(bridge.wait_online, 30)
            await asyncio.sleep(0.5)
            await sat.heard(say("okay nabu, turn on the kitchen light"))
            transcript = await probe.wait_for("/pi-study/transcript", timeout=20)
            assert transcript["text"] == "turn on the kitchen light", sat.log()
            # Home Assistant's wake word setting, kept by the bridge in the retained state, is followed.
            mark = len(probe.messages)
            await probe.client.publish("hearth/satellite/pi-study/settings/set", signed(
                bridge.data_dir, "hearth/satellite/pi-study/settings/set", {"request_id": "w1", "wake_word": "hey_jarvis"}))
            await wait_status(probe, "pi-study", mark, wake_word="hey_jarvis")
            mark = len(probe.messages)
            await probe.client.publish("hearth/satellite/pi-study/settings/set", signed(
                bridge.data_dir, "hearth/satellite/pi-study/settings/set", {"request_id": "w2", "wake_word": None}))
            await wait_status(probe, "pi-study", mark, wake_word="okay_nabu")
            assert sat.proc is not None
            sat.proc.kill()  # no goodbye: the broker publishes its last will
            await wait_status(probe, "pi-study", len(probe.messages), state="offline", timeout=60)
    finally:
        sat.stop()
