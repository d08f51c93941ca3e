"""Switches and the select are not optimistic: the bridge confirms, or nothing changes."""

from __future__ import annotations

import pytest

from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_bridge import HassBridge


async def _call(hass: HomeAssistant, domain: str, service: str, entity_id: str, **data) -> None:
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )


@pytest.mark.parametrize(
    ("entity_id", "key"),
    [
        ("switch.hearth_bridge_local_only_processing", "local_only"),
        ("switch.hearth_bridge_privacy_mode", "privacy_mode"),
    ],
)
async def test_policy_switch_confirmed(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, entity_id: str, key: str
) -> None:
    await _call(hass, "switch", "turn_on", entity_id)
    assert hass.states.get(entity_id).state == STATE_ON
    command = bridge.messages("/policy/set")[-1]
    assert command[key] is True
    assert len(command["request_id"]) == 32
    await _call(hass, "switch", "turn_off", entity_id)
    assert hass.states.get(entity_id).state == STATE_OFF
    second = bridge.messages("/policy/set")[-1]
    assert second[key] is False
    assert second["request_id"] != command["request_id"]


async def test_switch_timeout_keeps_state(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    bridge.answer = False
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "switch", "turn_on", "switch.hearth_bridge_privacy_mode")
    assert err.value.translation_key == "bridge_timeout"
    assert err.value.translation_domain == "hearth"
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_OFF
    assert len(loaded.runtime_data.hub._pending) == 0


async def test_switch_refused_keeps_state(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    bridge.refuse = "policy is locked"
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "switch", "turn_on", "switch.hearth_bridge_local_only_processing")
    assert err.value.translation_key == "bridge_refused"
    assert err.value.translation_placeholders == {"error": "policy is locked"}
    assert hass.states.get("switch.hearth_bridge_local_only_processing").state == STATE_OFF


async def test_result_carrying_policy(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A result that carries the confirmed policy is applied even before `policy/state`."""

    async def answer(command: dict) -> None:
        await bridge.send(
            "bridge/policy/result",
            {
                "request_id": command["request_id"],
                "ok": True,
                "error": None,
                "policy": {**bridge.policy, "privacy_mode": True, "revision": 50},
            },
        )

    bridge._policy_set = answer  # type: ignore[method-assign]
    await _call(hass, "switch", "turn_on", "switch.hearth_bridge_privacy_mode")
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_ON


async def test_retention_select(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    await _call(
        hass, "select", "select_option", "select.hearth_bridge_audio_retention", option="memory"
    )
    assert hass.states.get("select.hearth_bridge_audio_retention").state == "memory"
    assert bridge.messages("/policy/set")[-1]["retention"] == "memory"
    bridge.answer = False
    with pytest.raises(HomeAssistantError):
        await _call(
            hass, "select", "select_option", "select.hearth_bridge_audio_retention", option="none"
        )
    assert hass.states.get("select.hearth_bridge_audio_retention").state == "memory"


async def test_microphone_switch(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    await _call(hass, "switch", "turn_off", "switch.kitchen_microphone")
    assert hass.states.get("switch.kitchen_microphone").state == STATE_OFF
    assert bridge.messages("/policy/set")[-1]["microphones"] == {"kitchen": {"muted": True}}
    await _call(hass, "switch", "turn_on", "switch.kitchen_microphone")
    assert hass.states.get("switch.kitchen_microphone").state == STATE_ON
    bridge.answer = False
    with pytest.raises(HomeAssistantError):
        await _call(hass, "switch", "turn_off", "switch.kitchen_microphone")
    assert hass.states.get("switch.kitchen_microphone").state == STATE_ON
