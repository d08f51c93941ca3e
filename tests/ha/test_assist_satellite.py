"""Assist satellite entities, driven through Home Assistant's own assist_satellite actions."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import pytest

from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import async_get_pipelines, async_update_pipeline
from homeassistant.components.assist_satellite import AssistSatelliteEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er

from custom_components.hearth.const import (
    CONF_AGENT_ID,
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DOMAIN,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_bridge import BRIDGE_ID, HassBridge
from .test_voice import _agent

ENTITY = "assist_satellite.kitchen"


async def _action(hass: HomeAssistant, service: str, **data: object) -> None:
    await hass.services.async_call(
        "assist_satellite", service, {"entity_id": ENTITY, **data}, blocking=True
    )


async def test_entity_follows_bridge_state(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    entry = er.async_get(hass).async_get(ENTITY)
    assert entry is not None
    assert entry.unique_id == f"{BRIDGE_ID}-kitchen-assist_satellite"
    state = hass.states.get(ENTITY)
    assert state.state == "idle"
    assert state.attributes["supported_features"] == (
        AssistSatelliteEntityFeature.ANNOUNCE | AssistSatelliteEntityFeature.START_CONVERSATION
    )
    for bridge_state, expected in (
        ("listening", "listening"),
        ("transcribing", "processing"),
        ("processing", "processing"),
        ("responding", "responding"),
        ("error", "idle"),
        ("idle", "idle"),
    ):
        await bridge.satellite_state("kitchen", bridge_state)
        await hass.async_block_till_done()
        assert hass.states.get(ENTITY).state == expected, bridge_state

    await bridge.go_offline()
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY).state == "unavailable"


async def test_announce_waits_for_playback(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await _action(hass, "announce", message="Dinner is ready", preannounce=False)
    announce = bridge.messages("/satellite/kitchen/announce")
    assert len(announce) == 1
    assert announce[0]["text"] == "Dinner is ready"
    assert announce[0]["start_conversation"] is False
    assert announce[0]["request_id"]
    # The action returned after the bridge went responding → idle.
    assert hass.states.get(ENTITY).state == "idle"


async def test_announce_returns_while_bridge_speaks(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """The action blocks until the bridge reports the end of playback."""
    bridge.answer = False
    task = hass.async_create_task(_action(hass, "announce", message="Hello", preannounce=False))
    await asyncio.sleep(0.1)  # not block_till_done: it would wait for the action itself
    await bridge.satellite_state("kitchen", "responding")
    await asyncio.sleep(0.1)
    assert not task.done()
    assert hass.states.get(ENTITY).state == "responding"
    await bridge.satellite_state("kitchen", "idle")
    await asyncio.wait_for(task, 2)
    assert hass.states.get(ENTITY).state == "idle"


async def test_announce_gives_up_after_timeout(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    bridge.answer = False
    with patch("custom_components.hearth.assist_satellite.ANNOUNCE_START_TIMEOUT", 0.1):
        await _action(hass, "announce", message="Anyone there?")
    assert bridge.messages("/satellite/kitchen/announce")[0]["text"] == "Anyone there?"
    assert hass.states.get(ENTITY).state == "idle"


async def test_announce_media_missing_is_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """Media announcements: tests/ha/test_announce_media.py."""
    with pytest.raises(HomeAssistantError) as err:
        await _action(
            hass, "announce", media_id="http://127.0.0.1:8123/local/chime.mp3", preannounce=False
        )
    assert err.value.translation_key == "announce_media_unresolved"
    assert "chime.mp3" in str(err.value)
    assert bridge.messages("/satellite/kitchen/announce") == []
    assert bridge.messages("/satellite/kitchen/pipeline/play") == []


async def test_announce_on_muted_satellite_is_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    with pytest.raises(HomeAssistantError) as err:
        await _action(hass, "announce", message="Hello")
    assert err.value.translation_key == "satellite_muted"
    assert bridge.messages("/satellite/kitchen/announce") == []


async def test_start_conversation_listens_and_continues(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    agent, agent_entry = _agent(hass, "llama", "local_polling")
    hass.config_entries.async_update_entry(
        loaded,
        options={
            CONF_SATELLITES: {
                "kitchen": {CONF_AGENT_ID: agent_entry.entry_id, CONF_SHOW_TRANSCRIPTS: True}
            }
        },
    )
    # Home Assistant refuses to start conversations with its built-in agent; the pipeline it
    # checks names a conversation-capable agent.
    pipeline = async_get_pipelines(hass)[0]
    await async_update_pipeline(hass, pipeline, conversation_engine=agent_entry.entry_id)

    await _action(
        hass,
        "start_conversation",
        start_message="Shall I turn off the lights?",
        preannounce=False,
    )
    announce = bridge.messages("/satellite/kitchen/announce")[-1]
    assert announce["text"] == "Shall I turn off the lights?"
    assert announce["start_conversation"] is True
    await hass.async_block_till_done()
    # The bridge listens after speaking, and the entity shows it.
    assert hass.states.get(ENTITY).state == "listening"

    # The answer continues the conversation Home Assistant started, with its context.
    await bridge.transcript("kitchen", "yes please")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(agent.inputs) == 1
    heard = agent.inputs[0]
    assert heard.text == "yes please"
    assert heard.extra_system_prompt == "Shall I turn off the lights?"
    assert heard.satellite_id == ENTITY
    chat_log_id = heard.conversation_id
    assert chat_log_id
    # Only once: the next command has no start message any more.
    await bridge.transcript("kitchen", "thanks")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert agent.inputs[1].extra_system_prompt is None


async def test_start_conversation_refused_with_builtin_agent(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    assert async_get_pipelines(hass)[0].conversation_engine == conversation.HOME_ASSISTANT_AGENT
    with pytest.raises(HomeAssistantError):
        await _action(hass, "start_conversation", start_message="Hi")
    assert bridge.messages("/satellite/kitchen/announce") == []


async def test_wake_word_configuration(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, hass_ws_client
) -> None:
    await bridge.send(
        "satellite/kitchen/status",
        {"state": "online", "protocol": 1, "name": "Kitchen", "wake_word": "hey_jarvis"},
        retain=True,
    )
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "assist_satellite/get_configuration", "entity_id": ENTITY}
    )
    msg = await client.receive_json()
    assert msg["success"], msg
    config = msg["result"]
    assert [w["id"] for w in config["available_wake_words"]] == [
        "okay_nabu",
        "hey_jarvis",
        "hey_mycroft",
        "alexa",
    ]
    assert config["active_wake_words"] == ["hey_jarvis"]
    assert config["max_active_wake_words"] == 1

    await client.send_json_auto_id(
        {
            "type": "assist_satellite/set_wake_words",
            "entity_id": ENTITY,
            "wake_word_ids": ["alexa"],
        }
    )
    msg = await client.receive_json()
    # The wake word is now set from Home Assistant: the bridge applies and confirms it
    # (more in tests/ha/test_satellite_features.py).
    assert msg["success"], msg
    assert bridge.messages("/satellite/kitchen/settings/set")[-1]["wake_word"] == "alexa"
    await client.send_json_auto_id(
        {"type": "assist_satellite/get_configuration", "entity_id": ENTITY}
    )
    assert (await client.receive_json())["result"]["active_wake_words"] == ["alexa"]


async def test_start_conversation_uses_the_satellites_pipeline(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """Home Assistant checks the pipeline chosen in Hearth's options, not the preferred one."""
    from .test_pipeline import _pipeline

    _, agent_entry = _agent(hass, "llama", "local_polling")
    pipeline = await _pipeline(hass, "Llama", conversation_engine=agent_entry.entry_id)
    hass.config_entries.async_update_entry(
        loaded,
        options={
            CONF_SATELLITES: {
                "kitchen": {"pipeline": pipeline.id, CONF_SHOW_TRANSCRIPTS: True}
            }
        },
    )
    await _action(hass, "start_conversation", start_message="Hi", preannounce=False)
    assert bridge.messages("/satellite/kitchen/announce")[-1]["start_conversation"] is True
