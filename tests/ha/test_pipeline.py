"""Per-satellite pipeline choice: Hearth's own or a Home Assistant Assist pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from homeassistant.components.assist_pipeline import Pipeline
from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er, issue_registry as ir

from custom_components.hearth.const import (
    CONF_AGENT_ID,
    CONF_PIPELINE,
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DOMAIN,
)
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    mock_integration,
)

from .fake_bridge import HassBridge
from .test_voice import _agent, _say, kitchen_light  # noqa: F401  # fixture


async def _pipeline(hass: HomeAssistant, name: str, **engines: Any) -> Pipeline:
    data: dict[str, Any] = {
        "conversation_engine": "conversation.home_assistant",
        "conversation_language": "en",
        "language": "en",
        "name": name,
        "stt_engine": None,
        "stt_language": None,
        "tts_engine": None,
        "tts_language": None,
        "tts_voice": None,
        "wake_word_entity": None,
        "wake_word_id": None,
    }
    data.update(engines)
    if data["stt_engine"]:
        data["stt_language"] = "en"
    if data["tts_engine"]:
        data["tts_language"] = "en"
    return await hass.data[KEY_ASSIST_PIPELINE].pipeline_store.async_create_item(data)


def _choose_pipeline(hass: HomeAssistant, entry: MockConfigEntry, pipeline_id: str) -> None:
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_SATELLITES: {
                "kitchen": {
                    CONF_PIPELINE: pipeline_id,
                    CONF_AGENT_ID: None,
                    CONF_SHOW_TRANSCRIPTS: True,
                }
            }
        },
    )


def _cloud_stt(hass: HomeAssistant) -> str:
    """An STT entity from a fake cloud integration."""
    mock_integration(hass, MockModule("cloudy_stt", partial_manifest={"iot_class": "cloud_push"}))
    entry = er.async_get(hass).async_get_or_create(
        "stt", "cloudy_stt", "stt-1", suggested_object_id="cloudy_speech"
    )
    return entry.entity_id


async def test_options_offer_pipelines(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    pipeline = await _pipeline(hass, "Kitchen LLM")
    result = await hass.config_entries.options.async_init(loaded.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "satellites"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"satellite": "kitchen"}
    )
    options = result["data_schema"].schema[CONF_PIPELINE].config["options"]
    assert options[0] == {"value": "hearth", "label": "Hearth"}
    assert {"value": pipeline.id, "label": "Kitchen LLM"} in options
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_PIPELINE: pipeline.id, CONF_SHOW_TRANSCRIPTS: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded.options[CONF_SATELLITES]["kitchen"][CONF_PIPELINE] == pipeline.id


async def test_allowed_pipeline_answers_with_its_agent(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    agent, agent_entry = _agent(hass, "llama", "local_polling")
    pipeline = await _pipeline(
        hass, "Llama", conversation_engine=agent_entry.entry_id, conversation_language="fr"
    )
    _choose_pipeline(hass, loaded, pipeline.id)
    await _say(hass, bridge, "bonjour")
    assert [i.text for i in agent.inputs] == ["bonjour"]
    assert agent.inputs[0].language == "fr"
    assert bridge.messages("/satellite/kitchen/response")[-1]["text"] == "llama heard you"


async def test_cloud_pipeline_allowed_without_local_only(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    agent, agent_entry = _agent(hass, "cloudy", "cloud_polling")
    pipeline = await _pipeline(
        hass, "Cloudy", conversation_engine=agent_entry.entry_id, stt_engine=_cloud_stt(hass)
    )
    _choose_pipeline(hass, loaded, pipeline.id)
    await _say(hass, bridge, "hello")
    assert len(agent.inputs) == 1
    assert not ir.async_get(hass).issues


@pytest.mark.parametrize("stage", ["stt", "conversation", "tts"])
async def test_local_only_refuses_cloud_pipeline(
    hass: HomeAssistant,
    bridge: HassBridge,
    loaded: MockConfigEntry,
    kitchen_light: list,  # noqa: F811
    stage: str,
) -> None:
    await hass.services.async_call(
        "switch",
        "turn_on",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    local_agent, local_entry = _agent(hass, "llama", "local_polling")
    cloud_agent, cloud_entry = _agent(hass, "cloudy", "cloud_polling")
    engines: dict[str, Any] = {"conversation_engine": local_entry.entry_id}
    if stage == "stt":
        engines["stt_engine"] = engine_id = _cloud_stt(hass)
        integration = "cloudy_stt"
    elif stage == "conversation":
        engines["conversation_engine"] = engine_id = cloud_entry.entry_id
        integration = "cloudy"
    else:
        # A legacy TTS provider is named after its integration: Home Assistant Cloud.
        engines["tts_engine"] = engine_id = "cloud"
        integration = "cloud"
    pipeline = await _pipeline(hass, "Mixed", **engines)
    _choose_pipeline(hass, loaded, pipeline.id)

    await _say(hass, bridge, "turn on the kitchen light")

    # Nothing reached the pipeline's agents; Hearth's own (the built-in agent) acted.
    assert local_agent.inputs == []
    assert cloud_agent.inputs == []
    assert len(kitchen_light) == 1
    assert bridge.messages("/satellite/kitchen/response")
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"cloud_pipeline_blocked_{loaded.entry_id}_{pipeline.id}"
    )
    assert issue is not None
    assert issue.translation_key == "pipeline_blocked_cloud_integration"
    placeholders = issue.translation_placeholders
    assert placeholders["pipeline"] == "Mixed"
    assert placeholders["stage"] == stage
    assert placeholders["engine_id"] == engine_id
    assert placeholders["integration"] == integration
    assert placeholders["iot_class"].startswith("cloud_")
    # Counted with the other refusals (the fake bridge's own count is 2).
    assert hass.states.get("sensor.hearth_bridge_blocked_cloud_requests").state == "3"

    # Allowing the cloud again withdraws the repair.
    await hass.services.async_call(
        "switch",
        "turn_off",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert (
        ir.async_get(hass).async_get_issue(
            DOMAIN, f"cloud_pipeline_blocked_{loaded.entry_id}_{pipeline.id}"
        )
        is None
    )


async def test_missing_pipeline_falls_back_to_hearth(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, kitchen_light: list  # noqa: F811
) -> None:
    _choose_pipeline(hass, loaded, "no-such-pipeline")
    await _say(hass, bridge, "turn on the kitchen light")
    assert len(kitchen_light) == 1


async def test_route_of_a_local_pipeline(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A pipeline with Home Assistant's own agent and any language answers in Home Assistant's
    language with the built-in agent, also under Local-only processing."""
    pipeline = await _pipeline(hass, "Local", conversation_language="*")
    _choose_pipeline(hass, loaded, pipeline.id)
    await hass.async_block_till_done()
    voice = loaded.runtime_data.voice
    assert await voice.async_choose_route("kitchen") == (None, hass.config.language)
    await hass.services.async_call(
        "switch",
        "turn_on",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert (await voice.async_choose_pipeline("kitchen")) is not None
    await voice.async_update_modes()
    assert voice.mode_for("kitchen") == "assist"
    assert voice.mode_for("nobody") == "hearth"
