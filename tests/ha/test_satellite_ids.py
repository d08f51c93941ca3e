"""Satellite ids with `.`, `:` or `@` (Hermes sites such as `living.room`) in Home Assistant.

The bridge serves them under the one id rule, so the integration must give them a device and
entities, and its microphone switch must mute them by that id.
"""

from __future__ import annotations

from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth.const import DOMAIN

from .fake_bridge import BRIDGE_ID, HassBridge


async def test_a_dotted_hermes_site_gets_a_microphone_that_mutes_it(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    # A Hermes site publishes no status: the bridge's retained state makes it known.
    for site in ("living.room", "pi@den", "rhasspy:porch"):
        await bridge.send(
            f"satellite/{site}/state",
            {"state": "idle", "session_id": None, "muted": False, "protocol": "hermes", "online": True},
            retain=True,
        )
    await hass.async_block_till_done()

    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    for site in ("living.room", "pi@den", "rhasspy:porch"):
        assert devices.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-{site}")}) is not None, site
        assert entities.async_get_entity_id("switch", DOMAIN, f"{BRIDGE_ID}-{site}-microphone"), site

    switch = entities.async_get_entity_id("switch", DOMAIN, f"{BRIDGE_ID}-living.room-microphone")
    assert switch is not None
    assert hass.states.get(switch).state == STATE_ON
    await hass.services.async_call("switch", "turn_off", {ATTR_ENTITY_ID: switch}, blocking=True)
    assert bridge.messages("/policy/set")[-1]["microphones"] == {"living.room": {"muted": True}}
    assert hass.states.get(switch).state == STATE_OFF
