"""Fixtures for the Hearth integration's tests."""

from __future__ import annotations

import custom_components  # noqa: F401  # must precede Home Assistant's own custom_components

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from unittest.mock import patch

import pytest

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

from custom_components.hearth.const import CONF_BRIDGE_ID, CONF_PAIRING_KEY, CONF_PREFIX, DOMAIN
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from tests.support.broker import Mosquitto

from .fake_bridge import BRIDGE_ID, PAIRING_KEY, BrokerBridge, HassBridge


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/hearth."""


@pytest.fixture
def fast_timeouts() -> Iterator[None]:
    """Short waits for answers that will never come."""
    with (
        patch("custom_components.hearth.hub.REQUEST_TIMEOUT", 0.2),
        patch("custom_components.hearth.config_flow.DISCOVERY_TIMEOUT", 0.2),
    ):
        yield


@pytest.fixture(autouse=True)
async def core_components(hass: HomeAssistant) -> None:
    """Home Assistant's core integration (exposed entities), always loaded in a real install."""
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture
async def voice_components(hass: HomeAssistant) -> None:
    """Home Assistant's own components that Hearth relies on besides MQTT."""
    assert await async_setup_component(hass, "conversation", {})


@pytest.fixture
def config_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A Hearth config entry for the fake bridge."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Hearth bridge {BRIDGE_ID}",
        unique_id=BRIDGE_ID,
        data={CONF_PREFIX: "hearth", CONF_BRIDGE_ID: BRIDGE_ID, CONF_PAIRING_KEY: PAIRING_KEY},
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
def transcripts_enabled(hass: HomeAssistant) -> None:
    """The owner enabled the kitchen's Last transcript sensor (disabled by default)."""
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"{BRIDGE_ID}-kitchen-last_transcript",
        suggested_object_id="kitchen_last_transcript",
        disabled_by=None,
    )


@pytest.fixture
async def bridge(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> HassBridge:
    """A fake bridge speaking through the mocked MQTT client."""
    fake = HassBridge(hass)
    await fake.start()
    return fake


@pytest.fixture
async def setup_entry(
    hass: HomeAssistant, voice_components: None, config_entry: MockConfigEntry
) -> Callable[[], Awaitable[MockConfigEntry]]:
    """Set up the Hearth entry (after the fake bridge is listening)."""

    async def _setup() -> MockConfigEntry:
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        await hass.async_block_till_done()
        return config_entry

    return _setup


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    bridge: HassBridge,
    setup_entry: Callable[[], Awaitable[MockConfigEntry]],
) -> MockConfigEntry:
    """The entry loaded with an online bridge and one satellite, `kitchen`."""
    entry = await setup_entry()
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done()
    return entry


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port."""
    broker = Mosquitto().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
async def real_mqtt(
    hass: HomeAssistant, socket_enabled: None, mosquitto: Mosquitto
) -> AsyncIterator[Mosquitto]:
    """Home Assistant's real MQTT client connected to the real broker."""
    mqtt_entry = MockConfigEntry(
        domain="mqtt", data={"broker": "127.0.0.1", "port": mosquitto.port}
    )
    mqtt_entry.add_to_hass(hass)
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
        await hass.async_block_till_done()
    assert await mqtt.async_wait_for_mqtt_client(hass)
    yield mosquitto
    await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def broker_bridge(real_mqtt: Mosquitto) -> AsyncIterator[BrokerBridge]:
    """A fake bridge with its own connection to the real broker."""
    fake = BrokerBridge(real_mqtt.port)
    await fake.start()
    yield fake
    await fake.close()
