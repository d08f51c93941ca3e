"""Every entity's state and availability, driven by the fake bridge's MQTT messages."""

from __future__ import annotations

import logging

import pytest

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util

from custom_components.hearth.const import DOMAIN
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)

from .fake_bridge import BRIDGE_ID, HassBridge

BRIDGE_ENTITIES = {
    "binary_sensor.hearth_bridge_connectivity": STATE_ON,
    "switch.hearth_bridge_local_only_processing": STATE_OFF,
    "switch.hearth_bridge_privacy_mode": STATE_OFF,
    "select.hearth_bridge_audio_retention": "none",
    "sensor.hearth_bridge_blocked_cloud_requests": "2",
    "sensor.hearth_bridge_audio_sent_off_the_local_network": "0",
}
SATELLITE_ENTITIES = {
    "binary_sensor.kitchen_connectivity": STATE_ON,
    "switch.kitchen_microphone": STATE_ON,
    "assist_satellite.kitchen": "idle",
    "sensor.kitchen_processed_by": STATE_UNKNOWN,
    "event.kitchen_voice": STATE_UNKNOWN,
}


async def test_entities_and_devices(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    for entity_id, expected in {**BRIDGE_ENTITIES, **SATELLITE_ENTITIES}.items():
        assert hass.states.get(entity_id).state == expected, entity_id

    entity_registry = er.async_get(hass)
    assert (
        entity_registry.async_get("switch.hearth_bridge_privacy_mode").unique_id
        == f"{BRIDGE_ID}-privacy_mode"
    )
    assert (
        entity_registry.async_get("switch.kitchen_microphone").unique_id
        == f"{BRIDGE_ID}-kitchen-microphone"
    )
    assert entity_registry.async_get("switch.hearth_bridge_privacy_mode").entity_category == "config"
    assert entity_registry.async_get("binary_sensor.kitchen_connectivity").entity_category == "diagnostic"

    device_registry = dr.async_get(hass)
    bridge_device = device_registry.async_get_device(identifiers={(DOMAIN, BRIDGE_ID)})
    assert bridge_device.sw_version == "0.1.0"
    assert bridge_device.configuration_url == "http://127.0.0.1:10500/status"
    # The add-on's bridge links to its ingress page; a link of another kind is left out.
    for link, shown in (("homeassistant://hassio/ingress/5c53de3b_hearth", "homeassistant://hassio/ingress/5c53de3b_hearth"),
                        ("file:///etc/passwd", None)):
        await bridge.send("bridge/status", {**bridge.status_payload(), "status_api": link}, retain=True)
        await hass.async_block_till_done()
        assert device_registry.async_get(bridge_device.id).configuration_url == shown
    await bridge.send("bridge/status", bridge.status_payload(), retain=True)
    await hass.async_block_till_done()
    satellite = device_registry.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-kitchen")})
    assert satellite.name == "Kitchen"
    assert satellite.via_device_id == bridge_device.id
    assert satellite.area_id == "kitchen"

    size = hass.states.get("sensor.hearth_bridge_audio_sent_off_the_local_network")
    assert size.attributes["unit_of_measurement"] == "B"
    # What people said: the transcript sensor is disabled until the owner enables it.
    transcript = entity_registry.async_get("sensor.kitchen_last_transcript")
    assert transcript.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get("sensor.kitchen_last_transcript") is None
    # No "State" sensor: the Assist satellite entity shows the state.
    assert entity_registry.async_get_entity_id("sensor", DOMAIN, f"{BRIDGE_ID}-kitchen-state") is None


async def test_counters_and_state(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await bridge.send(
        "bridge/audit",
        {"counters": {"blocked_cloud_requests": 5, "bytes_off_lan": 32000}, "recent": []},
    )
    await bridge.satellite_state("kitchen", "listening")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("sensor.hearth_bridge_blocked_cloud_requests").state == "5"
    assert hass.states.get("sensor.hearth_bridge_audio_sent_off_the_local_network").state == "32000"
    assert hass.states.get("assist_satellite.kitchen").state == "listening"

    assert hass.states.get("sensor.hearth_bridge_questions_asked").state == "unknown"
    await bridge.send("bridge/stats", {"frames": 3, "questions": {"asked": 4, "answered": 3, "yes": 2,
                                                                  "no": 1, "timeout": 1, "bad": "x"}})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("sensor.hearth_bridge_questions_asked").state == "4"
    assert hass.states.get("sensor.hearth_bridge_questions_answered").state == "3"
    await bridge.send("bridge/stats", {"frames": 4})  # a bridge without questions changes nothing
    await bridge.send("bridge/stats", "not json")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("sensor.hearth_bridge_questions_asked").state == "4"

    await bridge.satellite_state("kitchen", "dancing")
    await bridge.send("bridge/audit", "not json")
    await bridge.send("bridge/audit", {"counters": {"bytes_off_lan": "lots"}})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("assist_satellite.kitchen").state == "idle"
    assert hass.states.get("sensor.hearth_bridge_audio_sent_off_the_local_network").state == "0"


async def test_transcript_and_processed_by(
    hass: HomeAssistant, bridge: HassBridge, transcripts_enabled: None, loaded: MockConfigEntry
) -> None:
    await bridge.transcript("kitchen", "what time is it")
    await hass.async_block_till_done(wait_background_tasks=True)
    transcript = hass.states.get("sensor.kitchen_last_transcript")
    assert transcript.attributes["text"] == "what time is it"
    assert transcript.attributes["device_class"] == "timestamp"
    heard_at = dt_util.parse_datetime(transcript.state)
    assert heard_at is not None and abs((dt_util.utcnow() - heard_at).total_seconds()) < 60
    processed = hass.states.get("sensor.kitchen_processed_by")
    assert processed.state == "in_process"  # the bridge's Locality; shown as "On the bridge"
    assert processed.attributes["engine"] == "pocketsphinx"
    assert processed.attributes["conversation_agent"] == "conversation.home_assistant"

    # A private transcript is never shown, and the old one is not left standing either.
    await bridge.transcript("kitchen", "my secret", private=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    transcript = hass.states.get("sensor.kitchen_last_transcript")
    assert transcript.state == STATE_UNKNOWN
    assert transcript.attributes["text"] is None
    for state in hass.states.async_all():
        assert "my secret" not in str(state.as_dict())

    # Words are an attribute: no 255-character limit of a state.
    await bridge.transcript("kitchen", "x" * 300, rejected=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("sensor.kitchen_last_transcript").attributes["text"] == "x" * 300


async def test_old_state_sensor_is_removed(
    hass: HomeAssistant, bridge: HassBridge, setup_entry
) -> None:
    """The satellite "State" sensor of earlier versions leaves the entity registry."""
    registry = er.async_get(hass)
    old = registry.async_get_or_create(
        "sensor", DOMAIN, f"{BRIDGE_ID}-kitchen-state", suggested_object_id="kitchen_state"
    )
    await setup_entry()
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    assert hass.states.get("assist_satellite.kitchen").state == "idle"
    assert registry.async_get(old.entity_id) is None
    assert hass.states.get(old.entity_id) is None


async def test_event_entity(hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry) -> None:
    await bridge.send(
        "satellite/kitchen/wake", {"session_id": "s2", "wake_word": "okay_nabu", "source": "bridge"}
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("event.kitchen_voice")
    assert state.attributes["event_type"] == "wake"
    assert state.attributes["wake_word"] == "okay_nabu"

    await bridge.send(
        "satellite/kitchen/intent",
        {
            "session_id": "s2",
            "text": "turn on the kitchen light",
            "intent": {
                "name": "HassTurnOn",
                "slots": {"name": {"value": "Kitchen light", "entity_ids": ["light.kitchen"]}},
            },
            "confidence": 0.8,
        },
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("event.kitchen_voice")
    assert state.attributes["event_type"] == "intent"
    assert state.attributes["intent"] == "HassTurnOn"
    assert state.attributes["entity_ids"] == ["light.kitchen"]
    assert "turn on the kitchen light" not in str(state.attributes)

    await bridge.send("satellite/kitchen/intent", {"session_id": "s3", "intent": None})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("event.kitchen_voice").attributes["intent"] is None

    await bridge.send(
        "satellite/kitchen/error", {"session_id": "s4", "code": "stt_failed", "message": "boom"}
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("event.kitchen_voice")
    assert state.attributes["event_type"] == "error"
    assert state.attributes["code"] == "stt_failed"

    await bridge.send("satellite/kitchen/question", {
        "session_id": "s5", "satellite": "kitchen", "kind": "which", "reason": "ambiguous_name",
        "choices": 2, "intents": ["HassTurnOn", "HassTurnOn"],
        "entity_ids": ["light.bedroom_lamp", "light.office_lamp"], "timeout": 5.0, "private": False,
        "text": "Turn on the lamp: the one in the bedroom or the one in the office?"})
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("event.kitchen_voice")
    assert state.attributes["event_type"] == "question"
    assert state.attributes["kind"] == "which" and state.attributes["choices"] == 2
    assert state.attributes["entity_ids"] == ["light.bedroom_lamp", "light.office_lamp"]
    assert "bedroom" not in str({k: v for k, v in state.attributes.items() if k != "entity_ids"})

    await bridge.send("satellite/kitchen/answer", {
        "session_id": "s5", "satellite": "kitchen", "outcome": "yes", "acted": True, "choice": 1,
        "intent": "HassTurnOn"})
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("event.kitchen_voice")
    assert state.attributes["event_type"] == "answer"
    assert (state.attributes["outcome"], state.attributes["acted"], state.attributes["choice"]) == ("yes", True, 1)


async def test_availability_logged_once(
    hass: HomeAssistant,
    bridge: HassBridge,
    loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.hearth")
    await bridge.go_offline()
    await bridge.go_offline()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("binary_sensor.hearth_bridge_connectivity").state == STATE_OFF
    for entity_id in {**BRIDGE_ENTITIES, **SATELLITE_ENTITIES}:
        if entity_id != "binary_sensor.hearth_bridge_connectivity":
            assert hass.states.get(entity_id).state == STATE_UNAVAILABLE, entity_id
    assert caplog.text.count(f"Hearth bridge {BRIDGE_ID} is unavailable") == 1
    assert caplog.text.count("Hearth satellite kitchen is unavailable") == 1

    await bridge.announce()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert caplog.text.count(f"Hearth bridge {BRIDGE_ID} is back online") == 1
    assert caplog.text.count("Hearth satellite kitchen is back online") == 1
    assert hass.states.get("switch.kitchen_microphone").state == STATE_ON


async def test_satellite_offline(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await bridge.send("satellite/kitchen/status", {"state": "offline"})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("binary_sensor.kitchen_connectivity").state == STATE_OFF
    assert hass.states.get("switch.kitchen_microphone").state == STATE_UNAVAILABLE
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_OFF


async def test_mqtt_disconnect(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    async_dispatcher_send(hass, "mqtt_connection_state", False)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("binary_sensor.hearth_bridge_connectivity").state == STATE_UNAVAILABLE
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_UNAVAILABLE
    async_dispatcher_send(hass, "mqtt_connection_state", True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_OFF


async def test_hermes_satellite_and_bad_topics(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A Hermes satellite only appears in the bridge's state; bad ids are ignored."""
    await bridge.satellite_state("porch", "idle")
    async_fire_mqtt_message(hass, "hearth/satellite/bad!id/state", '{"state": "idle"}')
    async_fire_mqtt_message(hass, "hearth/satellite/bad!id/status", '{"state": "online"}')
    async_fire_mqtt_message(hass, "hearth/satellite/bad!id/transcript", '{"text": "hi"}')
    async_fire_mqtt_message(hass, "hearth/satellite/bad!id/wake", "{}")
    async_fire_mqtt_message(hass, "hearth/satellite/porch/state", "garbage")
    async_fire_mqtt_message(hass, "hearth/satellite/porch/status", "garbage")
    async_fire_mqtt_message(hass, "hearth/satellite/porch/transcript", "garbage")
    async_fire_mqtt_message(hass, "hearth/satellite/porch/wake", "garbage")
    async_fire_mqtt_message(hass, "hearth/bridge/policy/state", "garbage")
    async_fire_mqtt_message(hass, "hearth/bridge/policy/result", '{"request_id": 5}')
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("binary_sensor.porch_connectivity").state == STATE_ON
    assert hass.states.get("assist_satellite.porch").state == "idle"
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-porch")})
    assert device.name == "porch"
    assert not [s for s in hass.states.async_all() if "bad" in s.entity_id]

    # The satellite later announces a name: the device follows.
    await bridge.satellite("porch", name="Porch")
    await hass.async_block_till_done(wait_background_tasks=True)
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-porch")})
    assert device.name == "Porch"


async def test_policy_revisions_do_not_go_back(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A lower revision in the same epoch (e.g. a policy file restored from a backup) is a reset:
    Home Assistant re-applies the owner's policy, so privacy mode comes back."""
    await bridge.send("bridge/policy/state", {**bridge.policy, "privacy_mode": True, "revision": 9})
    await bridge.send("bridge/policy/state", {**bridge.policy, "privacy_mode": False, "revision": 3})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("switch.hearth_bridge_privacy_mode").state == STATE_ON
    assert bridge.messages("/policy/set")[-1]["privacy_mode"] is True
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"policy_reset_{loaded.entry_id}") is not None


async def test_unknown_retention(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await bridge.send("bridge/policy/state", {**bridge.policy, "retention": "disk", "revision": 5})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("select.hearth_bridge_audio_retention").state == STATE_UNKNOWN


async def test_before_policy_arrives(
    hass: HomeAssistant, bridge: HassBridge, setup_entry
) -> None:
    await setup_entry()
    await bridge.send("bridge/status", bridge.status_payload())
    await bridge.satellite("kitchen")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("switch.hearth_bridge_local_only_processing").state == STATE_UNAVAILABLE
    assert hass.states.get("select.hearth_bridge_audio_retention").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.hearth_bridge_audio_sent_off_the_local_network").state == STATE_UNKNOWN
    # Before the bridge says otherwise, the microphone follows the satellite's state.
    await bridge.satellite_state("kitchen", "idle", muted=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("switch.kitchen_microphone").state == STATE_OFF
