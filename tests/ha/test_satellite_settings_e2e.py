"""Per-satellite settings end to end: Home Assistant's wake word configuration and selects →
real Mosquitto → the real bridge, which applies, saves and confirms them, and keeps them across
a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto

from .e2e import (  # noqa: F401 - probe_fixture, real_bridge_fixture: fixtures
    needs_tools,
    probe_fixture,
    publish_json,
    real_bridge_fixture,
    satellite_status,
    setup_hearth,
    start_bridge,
    state_of,
    until,
)

pytestmark = [needs_tools, pytest.mark.timeout(180)]

SATELLITE = "assist_satellite.kitchen"
WAKE_WORD = "select.kitchen_wake_word"
SENSITIVITY = "select.kitchen_finished_speaking_detection"


@pytest.fixture
async def home(
    hass: HomeAssistant, real_bridge: BridgeProcess, probe: Probe
) -> AsyncIterator[MockConfigEntry]:
    entry = await setup_hearth(hass, real_bridge)
    # The satellite announces its own wake word; nothing is chosen in Home Assistant yet.
    await publish_json(
        probe,
        "hearth/satellite/kitchen/status",
        {**satellite_status("kitchen"), "wake_word": "alexa"},
        retain=True,
    )
    await until(hass, lambda: state_of(hass, WAKE_WORD) == "alexa", message="no wake word select")
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_wake_word_and_sensitivity_are_applied_and_survive_a_restart(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    home: MockConfigEntry,
    real_bridge: BridgeProcess,
    real_mqtt: Mosquitto,
    probe: Probe,
) -> None:
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "assist_satellite/set_wake_words",
            "entity_id": SATELLITE,
            "wake_word_ids": ["hey_jarvis"],
        }
    )
    assert (await client.receive_json())["success"]
    # Returned once the bridge confirmed: its result, then its retained state, say so.
    result = await probe.wait_for("/satellite/kitchen/settings/result")
    assert result["ok"] is True and result["settings"]["wake_word"] == "hey_jarvis", result
    state = await probe.wait_for(
        "/satellite/kitchen/state", lambda d: d.get("settings", {}).get("wake_word") == "hey_jarvis"
    )
    assert state["settings"]["sensitivity"] == "default"
    assert state_of(hass, WAKE_WORD) == "hey_jarvis"

    await hass.services.async_call(
        "select", "select_option", {"entity_id": SENSITIVITY, "option": "relaxed"}, blocking=True
    )
    await probe.wait_for(
        "/satellite/kitchen/state", lambda d: d.get("settings", {}).get("sensitivity") == "relaxed"
    )
    assert state_of(hass, SENSITIVITY) == "relaxed"

    # A refusal from the real bridge carries its code.
    with pytest.raises(HomeAssistantError) as err:
        await home.runtime_data.settings.async_set("kitchen", wake_word="hey_siri")
    assert err.value.translation_placeholders["code"] == "unknown_wake_word"
    assert state_of(hass, WAKE_WORD) == "hey_jarvis"

    # Restarted on the same data folder, the bridge still holds both.
    await hass.async_add_executor_job(real_bridge.stop)
    restarted = await start_bridge(hass, real_mqtt, real_bridge.data_dir)
    try:
        before = len(probe.json("/satellite/kitchen/state"))
        await publish_json(
            probe,
            "hearth/satellite/kitchen/status",
            {**satellite_status("kitchen"), "wake_word": "alexa"},
            retain=True,
        )
        await until(hass, lambda: len(probe.json("/satellite/kitchen/state")) > before, timeout=60)
        again = probe.json("/satellite/kitchen/state")[-1]
        assert again["settings"] == {"wake_word": "hey_jarvis", "sensitivity": "relaxed", "confirm": "unsure"}
        await until(hass, lambda: state_of(hass, WAKE_WORD) == "hey_jarvis")
        assert state_of(hass, SENSITIVITY) == "relaxed"
        saved = (real_bridge.data_dir / "satellite-settings.json").read_text()
        assert "hey_jarvis" in saved
    finally:
        await hass.async_add_executor_job(restarted.stop)
