"""Config flow: MQTT discovery, manual prefix, reconfigure and options — every path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from homeassistant.config_entries import SOURCE_MQTT, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo

from custom_components.hearth.config_flow import valid_prefix
from custom_components.hearth.const import (
    CONF_AGENT_ID,
    CONF_BRIDGE_ID,
    CONF_PAIRING_KEY,
    CONF_POLITE,
    CONF_PREFIX,
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DOMAIN,
)
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .fake_bridge import BRIDGE_ID, PAIRING_KEY, FakeBridge, HassBridge

# As people paste it: upper case, in groups of eight.
PASTED_KEY = " ".join(PAIRING_KEY[i : i + 8].upper() for i in range(0, 64, 8))


def _discovery(payload: Any, topic: str = "hearth/bridge/status") -> MqttServiceInfo:
    return MqttServiceInfo(
        topic=topic,
        payload=payload if isinstance(payload, str) else json.dumps(payload),
        qos=0,
        retain=True,
        subscribed_topic="hearth/bridge/status",
        timestamp=0,
    )


async def _configure_while_bridge_answers(
    hass: HomeAssistant,
    flow_id: str,
    prefix: str,
    status: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit a prefix; the (mocked) broker delivers the bridge's retained status meanwhile."""
    task = asyncio.ensure_future(
        hass.config_entries.flow.async_configure(
            flow_id, {CONF_PREFIX: prefix, **(extra or {})}
        )
    )
    for _ in range(5):
        await asyncio.sleep(0)
    await hass.async_block_till_done()
    if status is not None:
        async_fire_mqtt_message(hass, f"{prefix.strip('/')}/bridge/status", json.dumps(status))
    return await task  # type: ignore[no-any-return]


def test_valid_prefix() -> None:
    assert valid_prefix("hearth")
    assert valid_prefix("home/hearth")
    assert not valid_prefix("")
    assert not valid_prefix("a/+/b")
    assert not valid_prefix("a/#")
    assert not valid_prefix("a//b")


async def test_discovery_creates_entry(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=_discovery(FakeBridge().status_payload())
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {"bridge_id": BRIDGE_ID, "prefix": "hearth"}
    # The key is checked: its form, then its id against the one the bridge announces.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: "not a key"}
    )
    assert result["errors"] == {"base": "invalid_key"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: "ab" * 32}
    )
    assert result["errors"] == {"base": "wrong_key"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: PASTED_KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Hearth bridge {BRIDGE_ID}"
    assert result["data"] == {
        CONF_PREFIX: "hearth",
        CONF_BRIDGE_ID: BRIDGE_ID,
        CONF_PAIRING_KEY: PAIRING_KEY,
    }
    assert result["result"].unique_id == BRIDGE_ID


async def test_discovery_from_mqtt_message(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient
) -> None:
    """The manifest's `mqtt` topic starts the flow when the bridge's status arrives."""
    async_fire_mqtt_message(
        hass, "hearth/bridge/status", json.dumps(FakeBridge().status_payload()), retain=True
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    assert flows[0]["context"]["unique_id"] == BRIDGE_ID


@pytest.mark.parametrize(
    ("payload", "topic", "reason"),
    [
        ("", "hearth/bridge/status", "invalid_discovery_info"),
        ("not json", "hearth/bridge/status", "invalid_discovery_info"),
        ({"state": "online"}, "hearth/bridge/status", "invalid_discovery_info"),
        (FakeBridge().status_payload(), "hearth/other", "invalid_discovery_info"),
        (FakeBridge().status_payload(online=False), "hearth/bridge/status", "bridge_offline"),
    ],
)
async def test_discovery_aborts(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, payload: Any, topic: str, reason: str
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=_discovery(payload, topic)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


async def test_discovery_already_configured(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, config_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=_discovery(FakeBridge().status_payload())
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_user_flow(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    status = FakeBridge(prefix="home/hearth").status_payload()
    result = await _configure_while_bridge_answers(hass, result["flow_id"], "/home/hearth/", status)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair"
    assert result["description_placeholders"] == {"bridge_id": BRIDGE_ID}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: "ab" * 32}
    )
    assert result["errors"] == {"base": "wrong_key"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: PASTED_KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        CONF_PREFIX: "home/hearth",
        CONF_BRIDGE_ID: BRIDGE_ID,
        CONF_PAIRING_KEY: PAIRING_KEY,
    }
    assert result["result"].unique_id == BRIDGE_ID


async def test_user_flow_errors_then_recovers(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, fast_timeouts: None
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PREFIX: "a/+/b"}
    )
    assert result["errors"] == {"base": "invalid_prefix"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PREFIX: "hearth"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_bridge"}
    # A message without a bridge id is not a bridge.
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "hearth", {"state": "online"}
    )
    assert result["errors"] == {"base": "no_bridge"}
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "hearth", FakeBridge().status_payload()
    )
    assert result["step_id"] == "pair"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: "12345"}
    )
    assert result["errors"] == {"base": "invalid_key"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PAIRING_KEY: PAIRING_KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_without_mqtt(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PREFIX: "hearth"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "mqtt_not_configured"}


async def test_user_flow_already_configured(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, config_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "hearth", FakeBridge().status_payload()
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure(
    hass: HomeAssistant,
    bridge: HassBridge,
    setup_entry: Any,
    fast_timeouts: None,
) -> None:
    entry = await setup_entry()
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PREFIX: "elsewhere", CONF_PAIRING_KEY: PAIRING_KEY}
    )
    assert result["errors"] == {"base": "no_bridge"}
    other = FakeBridge(prefix="elsewhere", bridge_id="another-bridge").status_payload()
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "elsewhere", other, {CONF_PAIRING_KEY: PAIRING_KEY}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_bridge"

    # The bridge moved and was re-paired (`hearth-bridge pair --rotate`): the new key is checked.
    moved = FakeBridge(prefix="elsewhere")
    moved.key = "c0" * 32
    result = await entry.start_reconfigure_flow(hass)
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "elsewhere", moved.status_payload(), {CONF_PAIRING_KEY: PAIRING_KEY}
    )
    assert result["errors"] == {"base": "wrong_key"}
    result = await _configure_while_bridge_answers(
        hass, result["flow_id"], "elsewhere", moved.status_payload(), {CONF_PAIRING_KEY: moved.key}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_PREFIX] == "elsewhere"
    assert entry.data[CONF_PAIRING_KEY] == moved.key
    assert entry.runtime_data.hub.prefix == "elsewhere"


async def test_options_without_satellites(
    hass: HomeAssistant, bridge: HassBridge, setup_entry: Any
) -> None:
    entry = await setup_entry()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["commands", "satellites"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "satellites"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_satellites"


async def test_options_per_satellite(
    hass: HomeAssistant, bridge: HassBridge, transcripts_enabled: None, loaded: MockConfigEntry
) -> None:
    entry = loaded
    assert hass.states.get("sensor.kitchen_last_transcript") is not None
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "satellites"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "satellites"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"satellite": "kitchen"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "satellite"
    assert result["description_placeholders"] == {"satellite": "kitchen"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_AGENT_ID: "conversation.home_assistant", CONF_SHOW_TRANSCRIPTS: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The mocked broker keeps no retained messages: the bridge tells the new subscription again.
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    assert entry.options == {
        CONF_SATELLITES: {
            "kitchen": {
                "pipeline": "hearth",
                CONF_AGENT_ID: "conversation.home_assistant",
                CONF_SHOW_TRANSCRIPTS: False,
            }
        }
    }
    # The entry reloaded: with transcripts off the sensor is gone, not just unavailable.
    assert hass.states.get("sensor.kitchen_last_transcript") is None
    assert hass.states.get("sensor.kitchen_processed_by") is not None


async def _set_polite(hass: HomeAssistant, entry_id: str, polite: bool | None) -> dict[str, Any]:
    """Go through the options menu to the voice commands form and submit it."""
    result = await hass.config_entries.options.async_init(entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "commands"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "commands"
    form = result
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {} if polite is None else {CONF_POLITE: polite}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    return form  # type: ignore[no-any-return]


async def test_options_polite_commands(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    entry = loaded
    satellites = {"kitchen": {"pipeline": "hearth", CONF_AGENT_ID: None, CONF_SHOW_TRANSCRIPTS: True}}
    hass.config_entries.async_update_entry(entry, options={CONF_SATELLITES: satellites})
    await hass.async_block_till_done()

    # Off by default; submitting without touching it stores False.
    form = await _set_polite(hass, entry.entry_id, None)
    assert form["data_schema"]({}) == {CONF_POLITE: False}
    assert entry.options == {CONF_SATELLITES: satellites, CONF_POLITE: False}

    # On: stored beside the satellites' options, which stay as they were.
    await _set_polite(hass, entry.entry_id, True)
    assert entry.options == {CONF_SATELLITES: satellites, CONF_POLITE: True}
    assert entry.state is ConfigEntryState.LOADED

    # The form shows the stored value as its default; turning it off again is stored too.
    form = await _set_polite(hass, entry.entry_id, False)
    assert form["data_schema"]({}) == {CONF_POLITE: True}
    assert entry.options == {CONF_SATELLITES: satellites, CONF_POLITE: False}


async def test_options_polite_commands_without_satellites(
    hass: HomeAssistant, bridge: HassBridge, setup_entry: Any
) -> None:
    # A bridge-wide option: available before any satellite has connected.
    entry = await setup_entry()
    await _set_polite(hass, entry.entry_id, True)
    assert entry.options == {CONF_POLITE: True}
