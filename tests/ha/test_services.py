"""The hearth.mute and hearth.purge_history actions."""

from __future__ import annotations

import pytest

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr

from custom_components.hearth.const import DOMAIN
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_bridge import BRIDGE_ID, HassBridge


async def test_mute_all(hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry) -> None:
    await bridge.satellite("porch", name="Porch")
    await hass.async_block_till_done()
    await hass.services.async_call(DOMAIN, "mute", {}, blocking=True)
    assert bridge.messages("/policy/set")[-1]["microphones"] == {
        "kitchen": {"muted": True},
        "porch": {"muted": True},
    }
    assert hass.states.get("switch.kitchen_microphone").state == "off"
    assert hass.states.get("switch.porch_microphone").state == "off"


async def test_mute_device_with_duration(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await bridge.satellite("porch", name="Porch")
    await hass.async_block_till_done()
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-porch")})
    await hass.services.async_call(
        DOMAIN, "mute", {"device_id": device.id, "duration": {"minutes": 10}}, blocking=True
    )
    assert bridge.messages("/policy/set")[-1]["microphones"] == {
        "porch": {"muted": True, "duration": 600}
    }
    assert hass.states.get("switch.kitchen_microphone").state == "on"
    assert hass.states.get("switch.porch_microphone").state == "off"


async def test_mute_by_area_and_entity(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await hass.services.async_call(DOMAIN, "mute", {"area_id": "kitchen"}, blocking=True)
    assert bridge.messages("/policy/set")[-1]["microphones"] == {"kitchen": {"muted": True}}
    await hass.services.async_call(
        DOMAIN, "mute", {"entity_id": "sensor.kitchen_processed_by"}, blocking=True
    )
    assert len(bridge.messages("/policy/set")) == 2


async def test_mute_errors(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    bridge_device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, BRIDGE_ID)})
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "mute", {"device_id": bridge_device.id}, blocking=True
        )
    assert err.value.translation_key == "not_a_satellite"
    assert err.value.translation_placeholders == {"device": "Hearth bridge"}
    # An area without satellites: nothing to mute.
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "mute", {"area_id": "cellar"}, blocking=True)
    assert err.value.translation_key == "no_satellites"
    bridge.answer = False
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(DOMAIN, "mute", {}, blocking=True)
    assert err.value.translation_key == "bridge_timeout"


async def test_actions_without_loaded_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await hass.config_entries.async_unload(loaded.entry_id)
    for service in ("mute", "purge_history"):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(DOMAIN, service, {}, blocking=True)
        assert err.value.translation_key == "not_loaded"


async def test_purge_history(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    await hass.services.async_call(DOMAIN, "purge_history", {}, blocking=True)
    assert bridge.purges == 1
    await hass.services.async_call(
        DOMAIN, "purge_history", {"config_entry_id": loaded.entry_id}, blocking=True
    )
    assert bridge.purges == 2
    assert set(bridge.messages("/history/purge")[-1]) == {"request_id"}
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "purge_history", {"config_entry_id": "nope"}, blocking=True
        )
    bridge.refuse = "disk is read-only"
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(DOMAIN, "purge_history", {}, blocking=True)
    assert err.value.translation_key == "bridge_refused"
    bridge.answer = False
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(DOMAIN, "purge_history", {}, blocking=True)
    assert err.value.translation_key == "bridge_timeout"
