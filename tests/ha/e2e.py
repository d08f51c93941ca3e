"""Shared pieces of the end-to-end tests: the real bridge process, a real light, the vocabulary wait.

Nothing on the voice path is mocked: a real Mosquitto, Home Assistant's real MQTT client, the
real bridge (`python -m bridge run`) recognising espeak-ng speech, the simulated satellite tool
streaming it in real time, and a light entity whose `turn_on` flips its state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
from typing import Any

import pytest

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.light import ColorMode, LightEntity
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.setup import async_setup_component

from bridge import PROTOCOL_VERSION
from bridge.recognition.vocabulary import parse_vocabulary
from custom_components.hearth.const import CONF_PAIRING_KEY, CONF_PREFIX, DOMAIN
from pytest_homeassistant_custom_component.common import setup_test_component_platform

from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.speech import have_espeak, read_pcm, synthesize

ROOT = Path(__file__).resolve().parents[2]
E2E_BRIDGE_ID = "e2e-bridge"
LIGHT = "light.kitchen_light"

needs_tools = pytest.mark.skipif(
    not have_espeak() or not shutil.which("sox") or not shutil.which("mosquitto"),
    reason="needs espeak-ng, sox and mosquitto",
)


class KitchenLight(LightEntity):
    """A plain on/off light: `turn_on` really turns it on."""

    _attr_name = "Kitchen light"
    _attr_unique_id = "e2e-kitchen-light"
    _attr_should_poll = False
    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes = {ColorMode.ONOFF}
    _attr_is_on = False

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn on."""
        self._attr_is_on = True
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn off."""
        self._attr_is_on = False
        self.async_write_ha_state()


async def until(
    hass: HomeAssistant, condition: Callable[[], bool], timeout: float = 20, message: str = ""
) -> None:
    """Wait until `condition()` holds, letting Home Assistant work meanwhile."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await hass.async_block_till_done(wait_background_tasks=True)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(message or f"condition not met within {timeout} s") from None


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    """Return an entity's state, None if it has none."""
    state = hass.states.get(entity_id)
    return state.state if state else None


async def setup_kitchen_light(hass: HomeAssistant) -> None:
    """A real light entity "Kitchen light" in area Kitchen, exposed to Assist."""
    setup_test_component_platform(hass, "light", [KitchenLight()])
    assert await async_setup_component(hass, "light", {"light": {"platform": "test"}})
    await hass.async_block_till_done()
    kitchen = ar.async_get(hass).async_get_or_create("Kitchen")
    er.async_get(hass).async_update_entity(LIGHT, area_id=kitchen.id)
    async_expose_entity(hass, "conversation", LIGHT, True)
    assert state_of(hass, LIGHT) == "off"


async def start_bridge(
    hass: HomeAssistant, broker: Mosquitto, data_dir: Path, args: list[str] | None = None
) -> BridgeProcess:
    """Start the real bridge (without blocking Home Assistant's loop while it starts)."""
    proc = BridgeProcess(
        "127.0.0.1",
        broker.port,
        data_dir,
        args=["--set", f"bridge_id={E2E_BRIDGE_ID}", "--set", "stt.workers=1", *(args or [])],
    )
    await hass.async_add_executor_job(proc.start)
    return proc


@pytest.fixture(name="real_bridge")
async def real_bridge_fixture(
    hass: HomeAssistant, real_mqtt: Mosquitto, tmp_path: Path
) -> AsyncIterator[BridgeProcess]:
    """The real bridge, online on the real broker."""
    proc = await start_bridge(hass, real_mqtt, tmp_path / "bridge")
    yield proc
    await hass.async_add_executor_job(proc.stop)


@pytest.fixture(name="probe")
async def probe_fixture(real_mqtt: Mosquitto) -> AsyncIterator[Probe]:
    """An outside listener on every Hearth topic (and a publisher for the satellite's status)."""
    async with Probe("127.0.0.1", real_mqtt.port, ["hearth/#"]) as listener:
        yield listener


async def setup_hearth(hass: HomeAssistant, bridge: BridgeProcess) -> ConfigEntry:
    """Set Hearth up against the real bridge as the owner does: the config flow's prefix step,
    then its pairing step with the key `hearth-bridge pair` prints (checked against the key id
    the real bridge announces)."""
    printed = await hass.async_add_executor_job(
        lambda: subprocess.run(
            [sys.executable, "-m", "bridge", "pair", "--data-dir", str(bridge.data_dir)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout
    )
    key = printed.split()[-1]
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    flow = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PREFIX: "hearth"})
    assert flow["step_id"] == "pair", flow
    # Pasted as people paste: upper case, in groups.
    pasted = " ".join(key[i : i + 8].upper() for i in range(0, 64, 8))
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PAIRING_KEY: pasted})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    assert entry.unique_id == E2E_BRIDGE_ID and entry.data[CONF_PAIRING_KEY] == key
    await hass.async_block_till_done()
    return entry


def satellite_status(sat_id: str) -> dict[str, Any]:
    """The status the simulated satellite tool announces (bridge/tools/satellite.py)."""
    return {
        "state": "online",
        "protocol": PROTOCOL_VERSION,
        "name": sat_id,
        "audio": {"rate": 16000, "width": 2, "channels": 1},
        "capabilities": {"wake_word": True, "speaker": True, "mute": True},
    }


async def vocabulary_in_service(hass: HomeAssistant, probe: Probe, timeout: float = 60) -> str:
    """Wait until the vocabulary Home Assistant published last is the one the bridge serves.

    Returns its hash. Home Assistant republishes 2 s after registry changes, so the published
    vocabulary must also hold still for longer than that.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await hass.async_block_till_done(wait_background_tasks=True)
        published = probe.json("/bridge/vocabulary/set")
        states = probe.json("/bridge/vocabulary/state")
        if published and states and LIGHT in {e["id"] for e in published[-1]["entities"]}:
            expected = parse_vocabulary(published[-1]).hash()
            if states[-1].get("status") == "ok" and states[-1].get("hash") == expected:
                count = len(published)
                await asyncio.sleep(2.5)  # outlast the integration's republish cooldown
                await hass.async_block_till_done(wait_background_tasks=True)
                if len(probe.json("/bridge/vocabulary/set")) == count:
                    return expected
                continue
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"vocabulary not in service: last state {states[-1:]}, "
                f"{len(published)} published"
            )
        await asyncio.sleep(0.1)


async def speech(hass: HomeAssistant, tmp_path: Path, text: str) -> bytes:
    """espeak-ng speech as 16 kHz mono PCM."""
    wav = await hass.async_add_executor_job(synthesize, text, tmp_path / "speech.wav")
    return read_pcm(wav)


async def publish_json(probe: Probe, topic: str, payload: dict[str, Any], retain: bool) -> None:
    """Publish through the probe's own connection."""
    await probe.client.publish(topic, json.dumps(payload), qos=1, retain=retain)
