"""The core flows against a real Mosquitto: Home Assistant's real MQTT client on one side,
a separate client playing the bridge on the other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.hearth.const import CONF_PAIRING_KEY, CONF_PREFIX, DOMAIN
from custom_components.hearth.policy_keeper import reset_issue_id
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from tests.support.broker import Mosquitto

from .fake_bridge import BRIDGE_ID, PAIRING_KEY, BrokerBridge


async def _until(hass: HomeAssistant, condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            await hass.async_block_till_done(wait_background_tasks=True)
            if condition():
                return
            await asyncio.sleep(0.05)


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return state.state if state else None


async def test_manual_flow_finds_retained_status(
    hass: HomeAssistant, broker_bridge: BrokerBridge
) -> None:
    await broker_bridge.announce()
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PREFIX: "hearth"}
    )
    assert result["step_id"] == "pair"  # the key id came with the retained status
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: PAIRING_KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == BRIDGE_ID
    await hass.async_block_till_done()


async def test_entities_switch_and_voice_over_broker(
    hass: HomeAssistant,
    broker_bridge: BrokerBridge,
    real_mqtt: Mosquitto,
    config_entry: MockConfigEntry,
) -> None:
    assert await async_setup_component(hass, "conversation", {})
    hass.states.async_set("light.kitchen", "off", {"friendly_name": "Kitchen light"})
    turn_on = async_mock_service(hass, "light", "turn_on")
    # The bridge and its satellite were there first: retained messages bring them in.
    await broker_bridge.announce()
    await broker_bridge.satellite("kitchen")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "on")
    assert _state(hass, "binary_sensor.hearth_bridge_connectivity") == "on"
    assert _state(hass, "assist_satellite.kitchen") == "idle"

    # The vocabulary reached the bridge, retained.
    await _until(hass, lambda: bool(broker_bridge.messages("/vocabulary/set")))
    vocabulary = broker_bridge.messages("/vocabulary/set")[-1]
    assert "light.kitchen" in [entity["id"] for entity in vocabulary["entities"]]

    # A switch round trip through the broker: command, confirmed state, result.
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    assert _state(hass, "switch.kitchen_microphone") == "off"
    assert broker_bridge.policy["microphones"]["kitchen"]["muted"] is True

    # A voice command: transcript in, light on, answer out.
    await broker_bridge.transcript("kitchen", "turn on the kitchen light")
    await _until(hass, lambda: bool(broker_bridge.messages("/satellite/kitchen/response")))
    assert len(turn_on) == 1
    assert broker_bridge.messages("/satellite/kitchen/response")[-1]["session_id"] == "s1"

    # The bridge dies: its last will (here: published offline status) makes entities unavailable.
    await broker_bridge.go_offline()
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "unavailable")
    assert _state(hass, "binary_sensor.hearth_bridge_connectivity") == "off"
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()


async def test_bridge_that_lost_its_policy_gets_it_back_over_broker(
    hass: HomeAssistant,
    broker_bridge: BrokerBridge,
    real_mqtt: Mosquitto,
    config_entry: MockConfigEntry,
) -> None:
    """Through the broker: a mute set in Home Assistant, the bridge back at revision 0 under a new
    epoch, the mute re-applied and shown only once the bridge's retained state holds it."""
    await broker_bridge.announce()
    await broker_bridge.satellite("kitchen")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "on")
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    assert broker_bridge.policy["microphones"]["kitchen"]["muted"] is True
    sent = len(broker_bridge.messages("/policy/set"))

    await broker_bridge.go_offline()
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "unavailable")
    broker_bridge.lose_policy()
    epoch = broker_bridge.policy["epoch"]
    await broker_bridge.announce()
    await _until(hass, lambda: broker_bridge.policy["revision"] == 1)
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "off")
    (command,) = broker_bridge.messages("/policy/set")[sent:]
    assert command["microphones"] == {"kitchen": {"muted": True}}
    assert broker_bridge.policy["epoch"] == epoch
    assert broker_bridge.policy["microphones"]["kitchen"]["muted"] is True
    hub = config_entry.runtime_data.hub
    assert hub.policy is not None and hub.policy.epoch == epoch and hub.policy.revision == 1
    assert ir.async_get(hass).async_get_issue(DOMAIN, reset_issue_id(config_entry.entry_id))
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()


async def test_satellite_forgotten_while_home_assistant_was_away(
    hass: HomeAssistant,
    broker_bridge: BrokerBridge,
    real_mqtt: Mosquitto,
    config_entry: MockConfigEntry,
) -> None:
    """A satellite removed while Home Assistant was not running leaves nothing retained: its
    device is removed once the retained messages had time to arrive; the others stay."""
    from datetime import timedelta

    from homeassistant.helpers import device_registry as dr
    from homeassistant.util import dt as dt_util

    from custom_components.hearth.hub import STALE_DEVICE_GRACE
    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    assert await async_setup_component(hass, "conversation", {})
    await broker_bridge.announce()
    await broker_bridge.satellite("kitchen")
    await broker_bridge.satellite("porch", name="Porch")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await _until(hass, lambda: _state(hass, "switch.porch_microphone") == "on")
    registry = dr.async_get(hass)

    def device(satellite: str) -> dr.DeviceEntry | None:
        return registry.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-{satellite}")})

    # Nothing is removed after the first grace period: both satellites are retained.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=STALE_DEVICE_GRACE + 1))
    await hass.async_block_till_done()
    assert device("kitchen") is not None and device("porch") is not None

    # Home Assistant goes away; meanwhile the porch satellite is removed (its retained status
    # emptied, which the broker deletes) and the bridge clears its retained state.
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()
    await broker_bridge.send("satellite/porch/status", "", retain=True)
    await broker_bridge.send("satellite/porch/state", "", retain=True)
    await asyncio.sleep(0.2)

    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await _until(hass, lambda: _state(hass, "switch.kitchen_microphone") == "on")
    assert device("porch") is not None  # not yet: retained messages may still be coming
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2 * STALE_DEVICE_GRACE + 2))
    await hass.async_block_till_done()
    assert device("porch") is None
    assert hass.states.get("switch.porch_microphone") is None
    assert device("kitchen") is not None
    assert _state(hass, "switch.kitchen_microphone") == "on"
