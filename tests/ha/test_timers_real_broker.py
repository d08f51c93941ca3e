"""A timer set by voice on a Hearth satellite rings on it: Home Assistant's own timer intents and
timer manager, its real MQTT client and a real Mosquitto; the bridge's side is played by a
separate client."""

from __future__ import annotations

import asyncio

from homeassistant.components import conversation
from homeassistant.components import intent as intent_component
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth.chime import chime_wav
from tests.support.broker import Mosquitto

from .e2e import state_of, until
from .fake_bridge import BrokerBridge

SATELLITE = "assist_satellite.kitchen"


async def test_a_short_timer_rings_on_the_satellite_it_was_set_on(
    hass: HomeAssistant,
    broker_bridge: BrokerBridge,
    real_mqtt: Mosquitto,
    config_entry: MockConfigEntry,
) -> None:
    assert await async_setup_component(hass, "conversation", {})
    assert await async_setup_component(hass, "intent", {})
    await broker_bridge.announce()
    await broker_bridge.satellite("kitchen")
    await broker_bridge.satellite("den", name="Den")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await until(hass, lambda: state_of(hass, SATELLITE) == "idle", timeout=10)
    await until(hass, lambda: state_of(hass, "assist_satellite.den") == "idle", timeout=10)
    registry = er.async_get(hass)
    kitchen = registry.async_get(SATELLITE).device_id
    assert intent_component.async_device_supports_timers(hass, kitchen)
    assert intent_component.async_device_supports_timers(
        hass, registry.async_get("assist_satellite.den").device_id
    )

    # What a Hearth satellite's voice command becomes: a conversation from its device.
    result = await conversation.async_converse(
        hass, "set a timer for 1 second", None, Context(), "en", device_id=kitchen
    )
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    await until(
        hass, lambda: bool(broker_bridge.messages("/satellite/kitchen/announce")), timeout=10
    )
    await asyncio.sleep(0.2)
    (ring,) = broker_bridge.messages("/satellite/kitchen/announce")
    assert ring["text"] == "Your 1 second timer is done."
    # The chime first, on the same satellite; nothing on the other one.
    assert broker_bridge.messages("/satellite/kitchen/pipeline/play") == [chime_wav()]
    assert broker_bridge.messages("/satellite/den/announce") == []
    assert broker_bridge.messages("/satellite/den/pipeline/play") == []
    await until(hass, lambda: state_of(hass, SATELLITE) == "idle", timeout=5)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()
