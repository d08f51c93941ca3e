"""Logbook events for privacy changes and refused cloud requests, and system health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import Event, HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.hearth import logbook, system_health
from custom_components.hearth.activity import EVENT_CLOUD_REFUSED, EVENT_PRIVACY_CHANGED
from custom_components.hearth.const import DOMAIN

from .fake_bridge import BRIDGE_ID, HassBridge


def _describers(hass: HomeAssistant) -> dict[str, Callable[[Event], dict[str, str]]]:
    found: dict[str, Callable[[Event], dict[str, str]]] = {}

    def describe(domain: str, event_type: str, describer: Callable[[Event], Any]) -> None:
        assert domain == DOMAIN
        found[event_type] = describer

    logbook.async_describe_events(hass, describe)
    return found


def _describe(hass: HomeAssistant, event: Event) -> str:
    return _describers(hass)[event.event_type](event)["message"]


async def test_privacy_changes_are_logbook_events(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    events = async_capture_events(hass, EVENT_PRIVACY_CHANGED)
    # The policy seen at start-up is no change.
    assert events == []
    await hass.services.async_call(
        "switch",
        "turn_on",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    await hass.services.async_call(
        "select",
        "select_option",
        {"entity_id": "select.hearth_bridge_audio_retention", "option": "memory"},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert [event.data for event in events] == [
        {"bridge_id": BRIDGE_ID, "setting": "local_only", "value": True, "satellite": None},
        {"bridge_id": BRIDGE_ID, "setting": "microphone", "value": False, "satellite": "kitchen"},
        {"bridge_id": BRIDGE_ID, "setting": "retention", "value": "memory", "satellite": None},
    ]
    assert [_describe(hass, event) for event in events] == [
        "turned local-only processing on",
        "turned the microphone of satellite kitchen off",
        "set audio retention to memory",
    ]
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    await hass.async_block_till_done()
    assert events[-1].data["value"] is True
    assert _describe(hass, events[-1]) == "turned the microphone of satellite kitchen on"


async def test_refused_cloud_requests_are_logbook_events(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    events = async_capture_events(hass, EVENT_CLOUD_REFUSED)
    # The bridge refused a cloud speech engine for the kitchen (the local one answered).
    await bridge.send(
        "satellite/kitchen/error",
        {
            "session_id": "s1",
            "satellite": "kitchen",
            "code": "cloud_refused",
            "message": "local only",
            "fatal": False,
        },
    )
    # Another error is no refusal.
    await bridge.send(
        "satellite/kitchen/error",
        {"session_id": "s1", "satellite": "kitchen", "code": "gap", "message": "", "fatal": False},
    )
    # Home Assistant refused a cloud conversation agent.
    loaded.runtime_data.hub.async_count_blocked_agent()
    await hass.async_block_till_done()
    assert [event.data for event in events] == [
        {"bridge_id": BRIDGE_ID, "satellite": "kitchen", "source": "bridge"},
        {"bridge_id": BRIDGE_ID, "satellite": None, "source": "home_assistant"},
    ]
    assert _describe(hass, events[0]) == (
        "refused a cloud speech engine for satellite kitchen; the local engine answered"
    )
    assert "conversation agent" in _describe(hass, events[1])
    # Nothing that was said is in them.
    assert all("text" not in event.data for event in events)


async def test_system_health_tells_the_bridge_state(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    assert await async_setup_component(hass, "system_health", {})
    await hass.async_block_till_done()
    info = await system_health.system_health_info(hass)
    assert info == {
        "bridge_reachable": True,
        "bridge_version": "0.1.0",
        "satellites_online": "1/1",
        "local_only": False,
        "privacy_mode": False,
        "grammar_size": "unknown",
    }
    await bridge.send(
        "bridge/vocabulary/state",
        {
            "status": "ok",
            "hash": "h",
            "error": None,
            "entities": 12,
            "areas": 3,
            "floors": 1,
            "sentences": 4,
            "compile_seconds": 0.5,
            "grammar": {"words": 310, "states": 2048, "transitions": 5120},
        },
        retain=True,
    )
    await bridge.satellite("den", name="Den", online=False)
    await hass.async_block_till_done()
    info = await system_health.system_health_info(hass)
    assert info["grammar_size"] == (
        "4 sentences, 12 entities; 310 words, 2048 states, 5120 transitions"
    )
    assert info["satellites_online"] == "1/2"
    await bridge.go_offline()
    await hass.async_block_till_done()
    assert (await system_health.system_health_info(hass))["bridge_reachable"] is False
    # Home Assistant found the platform.
    assert DOMAIN in hass.data["system_health"]


async def test_system_health_without_a_loaded_bridge(hass: HomeAssistant) -> None:
    assert await system_health.system_health_info(hass) == {"bridge_reachable": False}
