"""Pairing: the add-on's discovery, re-pairing (reauth), signed commands, refusals.

The fake bridge (fake_bridge.py) checks every policy, purge and settings command as the bridge
does (bridge/privacy/auth.py) and refuses the others with `unauthenticated`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from custom_components.hearth.const import CONF_BRIDGE_ID, CONF_PAIRING_KEY, CONF_PREFIX, DOMAIN
from custom_components.hearth.pairing import refused_issue_id
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .fake_bridge import BRIDGE_ID, PAIRING_KEY, HassBridge

MICROPHONE = "switch.kitchen_microphone"
NEW_KEY = "c0" * 32


def _hassio(**config: Any) -> HassioServiceInfo:
    return HassioServiceInfo(
        config={"bridge_id": BRIDGE_ID, "prefix": "hearth", "key": PAIRING_KEY, **config},
        name="Hearth",
        slug="local_hearth",
        uuid="1234",
    )


async def test_the_add_on_hands_over_the_key(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(key=PAIRING_KEY.upper())
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"bridge_id": BRIDGE_ID, "prefix": "hearth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_PREFIX: "hearth", CONF_BRIDGE_ID: BRIDGE_ID, CONF_PAIRING_KEY: PAIRING_KEY}


@pytest.mark.parametrize(
    "config",
    [{"key": "short"}, {"key": None}, {"bridge_id": ""}, {"bridge_id": 5}, {"prefix": "a/#"}, {"prefix": None}],
)
async def test_bad_add_on_discovery_aborts(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, config: dict[str, Any]
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(**config)
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "invalid_discovery_info"


async def test_the_add_on_s_new_key_reaches_a_configured_entry(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """Re-paired on the add-on side: its discovery updates the entry, which reloads."""
    bridge.key = NEW_KEY
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(key=NEW_KEY)
    )
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert loaded.data[CONF_PAIRING_KEY] == NEW_KEY and loaded.state is ConfigEntryState.LOADED
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    await hass.services.async_call("switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True)
    assert bridge.messages("/policy/set")[-1]["microphones"] == {"kitchen": {"muted": True}}
    assert bridge.refused == []


async def _reauth_flow(hass: HomeAssistant) -> dict[str, Any]:
    flows = [f for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
             if f["context"]["source"] == SOURCE_REAUTH]
    assert len(flows) == 1, flows
    return flows[0]


async def _submit_while_bridge_answers(
    hass: HomeAssistant, bridge: HassBridge, flow_id: str, key: str
) -> Any:
    task = asyncio.ensure_future(hass.config_entries.flow.async_configure(flow_id, {CONF_PAIRING_KEY: key}))
    for _ in range(5):
        await asyncio.sleep(0)
    await hass.async_block_till_done()
    await bridge.send("bridge/status", bridge.status_payload(), retain=True)
    return await task


async def test_a_refused_command_asks_to_pair_again_and_raises_the_repair_issue(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    """The bridge was re-paired (`hearth-bridge pair --rotate`): Home Assistant's key is refused."""
    bridge.key = NEW_KEY
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True)
    assert err.value.translation_key == "unauthenticated"
    assert bridge.refused == [("hearth/bridge/policy/set", "unknown_key")]
    assert hass.states.get(MICROPHONE).state == "on"  # nothing changed, nothing shown
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, refused_issue_id(loaded.entry_id))
    assert issue is not None and issue.is_fixable and issue.translation_placeholders["topic"] == (
        "hearth/bridge/policy/set")
    assert issue.translation_placeholders["reason"].startswith("unknown_key")

    flow = await _reauth_flow(hass)
    assert flow["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PAIRING_KEY: "zz"})
    assert result["errors"] == {"base": "invalid_key"}
    result = await _submit_while_bridge_answers(hass, bridge, flow["flow_id"], PAIRING_KEY)
    assert result["errors"] == {"base": "wrong_key"}  # the bridge announces the id of its new key
    result = await _submit_while_bridge_answers(hass, bridge, flow["flow_id"], NEW_KEY)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert loaded.data[CONF_PAIRING_KEY] == NEW_KEY
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    await hass.services.async_call("switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True)
    assert hass.states.get(MICROPHONE).state == "off"
    assert len(bridge.refused) == 1


async def test_a_forgery_raises_the_repair_issue_once(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    hub = loaded.runtime_data.hub
    for _ in range(3):
        await bridge.handle("hearth/bridge/policy/set", json.dumps({"request_id": "x", "local_only": False}))
    await bridge.send("bridge/error", {"code": "invalid_json", "message": "other"})
    await hass.async_block_till_done()
    assert hub.signer.refusals == 3 and [r for _t, r in bridge.refused] == ["unsigned"] * 3
    issues = [i for i in ir.async_get(hass).issues.values() if i.domain == DOMAIN]
    assert [i.issue_id for i in issues] == [refused_issue_id(loaded.entry_id)]
    assert issues[0].translation_placeholders["reason"].startswith("unsigned")
    assert bridge.policy["local_only"] is False  # the fake's own start; no forgery reached it
    assert bridge.messages("/policy/set") == []


async def test_an_entry_never_paired_asks_for_the_key_and_sends_nothing(
    hass: HomeAssistant, bridge: HassBridge, voice_components: None, fast_timeouts: None
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id=BRIDGE_ID,
                            data={CONF_PREFIX: "hearth", CONF_BRIDGE_ID: BRIDGE_ID})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    assert (await _reauth_flow(hass))["step_id"] == "reauth_confirm"
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("hearth", "purge_history", {}, blocking=True)
    assert err.value.translation_key == "not_paired"
    assert bridge.purges == 0 and bridge.messages("/history/purge") == [] and bridge.refused == []
    # Paired while the bridge does not answer: the key's form alone is checked.
    flow = await _reauth_flow(hass)
    bridge.answer = False
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PAIRING_KEY: PAIRING_KEY})
    assert result["reason"] == "reauth_successful" and entry.data[CONF_PAIRING_KEY] == PAIRING_KEY


async def test_the_sequence_number_keeps_growing_when_the_clock_goes_back(
    hass: HomeAssistant, bridge: HassBridge, config_entry: MockConfigEntry,
    setup_entry: Any, hass_storage: dict[str, Any],
) -> None:
    """The last number is kept; a clock set back does not make Home Assistant's commands replays."""
    ahead = time.time_ns() // 1_000_000 + 3_600_000  # sent when the clock was an hour ahead
    hass_storage[f"{DOMAIN}.{config_entry.entry_id}.seq"] = {
        "version": 1, "minor_version": 1, "key": f"{DOMAIN}.{config_entry.entry_id}.seq", "data": {"seq": ahead}}
    bridge.last_seq = ahead
    entry = await setup_entry()
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    await hass.services.async_call("switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True)
    await hass.services.async_call("hearth", "purge_history", {}, blocking=True)
    assert bridge.last_seq == ahead + 2 and bridge.refused == []
    assert entry.runtime_data.hub.signer._last == ahead + 2  # noqa: SLF001
