"""Setup, unload and reload, device removal, diagnostics."""

from __future__ import annotations

import json
import re

import pytest

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations

from custom_components.hearth import async_remove_config_entry_device
from custom_components.hearth.const import DOMAIN, PROTOCOL_VERSION
from custom_components.hearth.hub import protocol_issue_id
from custom_components.hearth.diagnostics import async_get_config_entry_diagnostics
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .fake_bridge import BRIDGE_ID, PAIRING_KEY, HassBridge


async def test_not_ready_without_mqtt(
    hass: HomeAssistant, voice_components: None, config_entry: MockConfigEntry
) -> None:
    await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.SETUP_RETRY


async def test_unload_and_reload(
    hass: HomeAssistant, bridge: HassBridge, mqtt_mock: MqttMockHAClient, loaded: MockConfigEntry
) -> None:
    assert loaded.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("switch.kitchen_microphone").state == STATE_UNAVAILABLE
    # Unsubscribed: messages change nothing and no voice command runs.
    mqtt_mock.async_publish.reset_mock()
    await bridge.transcript("kitchen", "turn on the kitchen light")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert not [c for c in mqtt_mock.async_publish.call_args_list if "response" in c.args[0]]

    assert await hass.config_entries.async_setup(loaded.entry_id)
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.LOADED
    assert hass.states.get("switch.kitchen_microphone").state == "on"


async def test_remove_devices(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    device_registry = dr.async_get(hass)
    bridge_device = device_registry.async_get_device(identifiers={(DOMAIN, BRIDGE_ID)})
    kitchen = device_registry.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-kitchen")})
    assert not await async_remove_config_entry_device(hass, loaded, bridge_device)
    # An online satellite would come straight back: refused.
    assert not await async_remove_config_entry_device(hass, loaded, kitchen)
    await bridge.send("satellite/kitchen/status", {"state": "offline"})
    await hass.async_block_till_done()
    assert await async_remove_config_entry_device(hass, loaded, kitchen)
    assert "kitchen" not in loaded.runtime_data.hub.satellites


async def test_satellite_removed_by_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """An empty retained status removes the satellite, its device and its entities."""
    await bridge.send("satellite/kitchen/status", "")
    await bridge.send("satellite/ghost/status", "")
    await hass.async_block_till_done()
    assert (
        dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-kitchen")})
        is None
    )
    assert hass.states.get("switch.kitchen_microphone") is None
    # It may come back later.
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    assert hass.states.get("switch.kitchen_microphone").state == "on"


async def test_diagnostics(hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry) -> None:
    await bridge.send(
        "bridge/audit",
        {"counters": {"bytes_off_lan": 1}, "recent": [{"text": "secret words"}]},
    )
    await bridge.transcript("kitchen", "secret words")
    # The bridge names its engines' servers (a Wyoming STT on the LAN).
    await bridge.send(
        "bridge/status",
        {
            "state": "online", "protocol": 1, "version": "0.1.0", "bridge_id": BRIDGE_ID,
            "status_api": "http://127.0.0.1:10500/status",
            "engines": {
                "stt": {"name": "wyoming", "locality": "lan", "host": "whisper.home.lan",
                        "port": 10300, "address_class": "private"},
                "tts": {"name": "wyoming", "locality": "lan", "host": "192.168.1.20"},
            },
        },
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    # A conversation started by Home Assistant left its prompt with the satellite.
    satellite = loaded.runtime_data.hub.satellites["kitchen"]
    satellite.continue_conversation("01JCONVERSATIONID", "You are a secret prompt")
    diagnostics = await async_get_config_entry_diagnostics(hass, loaded)
    dumped = json.dumps(diagnostics)
    for private in (
        "secret words", "10500", "whisper.home.lan", "192.168.1.20", "secret prompt",
        "01JCONVERSATIONID", PAIRING_KEY,
    ):
        assert private not in dumped, private
    assert diagnostics["entry"]["data"]["pairing_key"] == "**REDACTED**"
    assert diagnostics["bridge"]["engines"]["stt"]["host"] == "**REDACTED**"
    assert diagnostics["bridge"]["engines"]["stt"]["locality"] == "lan"
    assert diagnostics["satellites"]["kitchen"]["extra_system_prompt"] == "**REDACTED**"
    assert diagnostics["bridge"]["bridge_id"] == BRIDGE_ID
    assert diagnostics["bridge"]["status_api"] == "**REDACTED**"
    assert diagnostics["audit"]["counters"] == {"bytes_off_lan": 1}
    assert diagnostics["satellites"]["kitchen"]["last_utterance"] == "**REDACTED**"
    assert diagnostics["policy"]["local_only"] is False
    assert diagnostics["vocabulary_published"] is True


async def test_unsupported_protocol_raises_a_repair_issue(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A bridge advertising a protocol version the integration does not speak is a repair;
    a supported version withdraws it."""
    issues = ir.async_get(hass)
    issue_id = protocol_issue_id(loaded.entry_id)
    assert issues.async_get_issue(DOMAIN, issue_id) is None  # the fake bridge speaks 1

    await bridge.send("bridge/status", {**bridge.status_payload(), "protocol": 2}, retain=True)
    await hass.async_block_till_done()
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "unsupported_protocol"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "bridge": BRIDGE_ID,
        "protocol": "2",
        "supported": str(PROTOCOL_VERSION),
    }
    # Translated, with exactly these placeholders.
    translations = await async_get_translations(hass, "en", "issues", {DOMAIN})
    key = f"component.{DOMAIN}.issues.unsupported_protocol"
    assert translations[f"{key}.title"]
    placeholders = set(re.findall(r"{(\w+)}", translations[f"{key}.description"]))
    assert placeholders == set(issue.translation_placeholders)
    # The last will says the same thing: the issue stays.
    await bridge.send("bridge/status", {**bridge.status_payload(online=False), "protocol": 2})
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id) is not None

    await bridge.announce()  # protocol 1 again
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id) is None

    # No version, or one that is not a number, is not one the integration speaks either.
    for protocol, shown in ((None, "none"), ("1", "none"), (True, "none"), (0, "0")):
        payload = bridge.status_payload()
        payload.pop("protocol")
        if protocol is not None:
            payload["protocol"] = protocol
        await bridge.send("bridge/status", payload, retain=True)
        await hass.async_block_till_done()
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert issue is not None, protocol
        assert issue.translation_placeholders["protocol"] == shown

    # An empty retained status (the bridge was removed) leaves the issue as it is; unloading
    # the entry withdraws it.
    await bridge.send("bridge/status", "", retain=True)
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id) is not None
    assert await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_stale_devices_wait_for_a_reachable_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """Satellite devices with nothing on the broker are removed only while the bridge is
    reachable: an offline bridge publishes nothing, so nothing is judged stale then."""
    from datetime import timedelta

    from homeassistant.util import dt as dt_util

    from custom_components.hearth.hub import STALE_DEVICE_GRACE
    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    registry = dr.async_get(hass)
    ghost = registry.async_get_or_create(
        config_entry_id=loaded.entry_id,
        identifiers={(DOMAIN, f"{BRIDGE_ID}-ghost")},
        name="Ghost",
    )
    await bridge.go_offline()
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=STALE_DEVICE_GRACE + 1))
    await hass.async_block_till_done()
    assert registry.async_get(ghost.id) is not None
    # Online again: judged after the grace period.
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    async_fire_time_changed(
        hass, dt_util.utcnow() + timedelta(seconds=2 * STALE_DEVICE_GRACE + 2)
    )
    await hass.async_block_till_done()
    assert registry.async_get(ghost.id) is None
    kitchen = registry.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-kitchen")})
    assert kitchen is not None


async def test_unload_cancels_a_pending_request(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    import asyncio

    from homeassistant.exceptions import HomeAssistantError

    bridge.answer = False
    hub = loaded.runtime_data.hub
    request = hass.async_create_task(hub.async_purge_history())
    await asyncio.sleep(0.05)
    assert await hass.config_entries.async_unload(loaded.entry_id)
    with pytest.raises((asyncio.CancelledError, HomeAssistantError)):
        await request
