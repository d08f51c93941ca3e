"""Voice commands: transcripts through conversation agents, local-only refusals, repairs."""

from __future__ import annotations

from typing import Any, Literal
from unittest.mock import patch

import pytest

from homeassistant.components import conversation
from homeassistant.components.conversation import (
    AbstractConversationAgent,
    ConversationInput,
    ConversationResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, intent, issue_registry as ir

from custom_components.hearth.const import (
    CONF_AGENT_ID,
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DOMAIN,
)
from custom_components.hearth.voice import address_is_public, async_agent_locality
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    async_mock_service,
    mock_integration,
)

from .fake_bridge import BRIDGE_ID, HassBridge


class EchoAgent(AbstractConversationAgent):
    """A conversation agent that answers with its own name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inputs: list[ConversationInput] = []

    @property
    def supported_languages(self) -> Literal["*"]:
        return "*"

    async def async_process(self, user_input: ConversationInput) -> ConversationResult:
        self.inputs.append(user_input)
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech(f"{self.name} heard you")
        return ConversationResult(response=response, conversation_id="c-" + self.name)


def _agent(hass: HomeAssistant, domain: str, iot_class: str, data: dict[str, Any] | None = None):
    """Register a legacy conversation agent from a fake integration; return (agent, entry)."""
    mock_integration(hass, MockModule(domain, partial_manifest={"iot_class": iot_class}))
    entry = MockConfigEntry(domain=domain, title=f"{domain.title()} AI", data=data or {})
    entry.add_to_hass(hass)
    agent = EchoAgent(domain)
    conversation.async_set_agent(hass, entry, agent)
    return agent, entry


def _choose_agent(hass: HomeAssistant, entry: MockConfigEntry, agent_id: str) -> None:
    """Set the kitchen's agent without reloading (the options flow is tested elsewhere)."""
    hass.config_entries.async_update_entry(
        entry,
        options={CONF_SATELLITES: {"kitchen": {CONF_AGENT_ID: agent_id, CONF_SHOW_TRANSCRIPTS: True}}},
    )


async def _say(hass: HomeAssistant, bridge: HassBridge, text: str, **kwargs: Any) -> None:
    await bridge.transcript("kitchen", text, **kwargs)
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.fixture
def kitchen_light(hass: HomeAssistant) -> list:
    hass.states.async_set("light.kitchen", "off", {"friendly_name": "Kitchen light"})
    return async_mock_service(hass, "light", "turn_on")


def test_address_is_public() -> None:
    assert address_is_public("http://8.8.8.8:11434")
    assert address_is_public("1.1.1.1")
    assert address_is_public("http://[2606:4700::1111]/v1")
    assert not address_is_public("http://192.168.1.5:11434")
    assert not address_is_public("10.0.0.2:10300")
    assert not address_is_public("http://localhost:11434")
    assert not address_is_public("http://ollama.local")
    assert not address_is_public("http://[fe80::1]/")
    assert not address_is_public("")
    assert not address_is_public("http://")
    # The same table as the bridge's (tests/bridge/test_contract.py): documentation ranges and
    # carrier-grade NAT are public, whatever `ipaddress.is_private` says.
    assert address_is_public("http://198.51.100.7:10300")
    assert address_is_public("192.0.2.1")
    assert address_is_public("http://[2001:db8::1]/")
    assert address_is_public("100.64.0.1:11434")
    assert address_is_public("http://[::ffff:203.0.113.9]/")
    assert not address_is_public("http://[::ffff:10.0.0.2]/")
    assert not address_is_public("http://[fd00::2]:8080")
    assert not address_is_public("172.31.255.255")
    assert address_is_public("172.32.0.1")
    assert not address_is_public("fe80::1")  # a bare IPv6 literal
    assert address_is_public("2606:4700::1111")


async def test_voice_command_turns_on_light(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, kitchen_light: list
) -> None:
    with patch(
        "custom_components.hearth.voice.conversation.async_converse",
        wraps=conversation.async_converse,
    ) as converse:
        await _say(hass, bridge, "turn on the kitchen light")
    assert len(kitchen_light) == 1
    assert kitchen_light[0].data["entity_id"] == ["light.kitchen"]
    kwargs = converse.call_args.kwargs
    assert kwargs["agent_id"] is None
    assert kwargs["device_id"] == loaded.runtime_data.hub.satellite_device_id("kitchen")
    response = bridge.messages("/satellite/kitchen/response")[-1]
    assert response["session_id"] == "s1"
    assert response["text"]
    assert response["conversation_id"]
    assert response["continue"] is False


async def test_rejected_and_empty_transcripts_are_ignored(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, kitchen_light: list
) -> None:
    await _say(hass, bridge, "turn on the kitchen light", rejected=True)
    await _say(hass, bridge, "   ")
    assert kitchen_light == []
    assert bridge.messages("/response") == []


async def test_conversation_continues(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    agent, agent_entry = _agent(hass, "localish", "local_polling")
    _choose_agent(hass, loaded, agent_entry.entry_id)
    await _say(hass, bridge, "hello")
    await _say(hass, bridge, "again")
    assert [i.conversation_id for i in agent.inputs] == [None, "c-localish"]
    assert bridge.messages("/response")[-1]["text"] == "localish heard you"


async def test_cloud_agent_allowed_without_local_only(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    agent, agent_entry = _agent(hass, "cloudy", "cloud_polling")
    _choose_agent(hass, loaded, agent_entry.entry_id)
    await _say(hass, bridge, "tell me a joke")
    assert len(agent.inputs) == 1
    assert agent.inputs[0].device_id == loaded.runtime_data.hub.satellite_device_id("kitchen")
    assert bridge.messages("/response")[-1]["text"] == "cloudy heard you"


async def test_local_only_refuses_cloud_agent(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, kitchen_light: list
) -> None:
    agent, agent_entry = _agent(hass, "cloudy", "cloud_polling")
    _choose_agent(hass, loaded, agent_entry.entry_id)
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await _say(hass, bridge, "turn on the kitchen light")
    # The cloud agent never heard it; the built-in agent acted.
    assert agent.inputs == []
    assert len(kitchen_light) == 1
    assert hass.states.get("sensor.kitchen_processed_by").attributes["conversation_agent"] == (
        "conversation.home_assistant"
    )
    # Counted with the bridge's own refusals (2 in the fake bridge's audit).
    assert hass.states.get("sensor.hearth_bridge_blocked_cloud_requests").state == "3"
    issue_id = f"cloud_agent_blocked_{loaded.entry_id}_{agent_entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "agent_blocked_cloud_integration"
    assert issue.translation_placeholders["agent"] == "Cloudy AI"
    assert issue.translation_placeholders["integration"] == "cloudy"
    assert issue.translation_placeholders["iot_class"] == "cloud_polling"
    assert issue.translation_placeholders["satellite"] == "kitchen"

    # Allowing the cloud again withdraws the repair.
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await _say(hass, bridge, "tell me a joke")
    assert len(agent.inputs) == 1


async def test_local_only_and_local_agents(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    home, home_entry = _agent(hass, "ollamaish", "local_polling", {"url": "http://192.168.1.5"})
    _choose_agent(hass, loaded, home_entry.entry_id)
    await _say(hass, bridge, "hello")
    assert len(home.inputs) == 1

    remote, remote_entry = _agent(hass, "remoteish", "local_polling", {"url": "http://8.8.8.8"})
    _choose_agent(hass, loaded, remote_entry.entry_id)
    await _say(hass, bridge, "hello")
    assert remote.inputs == []
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"cloud_agent_blocked_{loaded.entry_id}_{remote_entry.entry_id}"
    )
    assert issue.translation_key == "agent_blocked_public_address"

    # Choosing the built-in agent explicitly is the same as no choice.
    _choose_agent(hass, loaded, conversation.HOME_ASSISTANT_AGENT)
    assert loaded.runtime_data.voice.agent_for("kitchen") is None


async def test_agent_locality_lookup(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    mock_integration(hass, MockModule("cloudy", partial_manifest={"iot_class": "cloud_push"}))
    cloud_entry = MockConfigEntry(domain="cloudy", data={})
    cloud_entry.add_to_hass(hass)
    registry = er.async_get(hass)
    entity = registry.async_get_or_create(
        "conversation", "cloudy", "agent1", config_entry=cloud_entry, original_name="Cloud chat"
    )
    locality = await async_agent_locality(hass, entity.entity_id)
    assert (locality.domain, locality.reason, locality.name) == (
        "cloudy", "cloud_integration", "Cloud chat"
    )
    hass.states.async_set(entity.entity_id, "unknown", {"friendly_name": "Cloudy chat"})
    assert (await async_agent_locality(hass, entity.entity_id)).name == "Cloudy chat"

    assert (await async_agent_locality(hass, "conversation.nothing")).reason == "unknown_integration"
    ghost = registry.async_get_or_create("conversation", "ghost_integration", "g1")
    locality = await async_agent_locality(hass, ghost.entity_id)
    assert (locality.domain, locality.reason) == ("ghost_integration", "unknown_integration")
    assert (await async_agent_locality(hass, "no-such-entry")).reason == "unknown_integration"
    local = await async_agent_locality(hass, "conversation.home_assistant")
    assert local.local and local.domain == "conversation"


async def test_unknown_agent_refused_under_local_only(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, kitchen_light: list
) -> None:
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    _choose_agent(hass, loaded, "conversation.vanished")
    await _say(hass, bridge, "turn on the kitchen light")
    assert len(kitchen_light) == 1
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"cloud_agent_blocked_{loaded.entry_id}_conversation.vanished"
    )
    assert issue.translation_key == "agent_blocked_unknown_integration"
    # Unloading the entry withdraws its repairs.
    await hass.config_entries.async_unload(loaded.entry_id)
    assert ir.async_get(hass).async_get_issue(
        DOMAIN, f"cloud_agent_blocked_{loaded.entry_id}_conversation.vanished"
    ) is None


async def test_transcript_for_forgotten_satellite(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    voice = loaded.runtime_data.voice
    await voice.async_handle("nobody", {"text": "hello", "session_id": "x"})
    assert bridge.messages("/response") == []
    assert BRIDGE_ID
