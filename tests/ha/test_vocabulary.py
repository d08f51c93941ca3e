"""The vocabulary: exposed entities, areas and floors, published retained and debounced."""

from __future__ import annotations

from datetime import timedelta
import json
import logging
from typing import Any

import pytest

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)
from homeassistant.util import dt as dt_util

from custom_components.hearth.const import CONF_POLITE
from custom_components.hearth.vocabulary import async_build_vocabulary
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from .fake_bridge import HassBridge

TOPIC = "hearth/bridge/vocabulary/set"


def _published(mqtt_mock: MqttMockHAClient) -> list[dict[str, Any]]:
    return [
        json.loads(call.args[1])
        for call in mqtt_mock.async_publish.call_args_list
        if call.args[0] == TOPIC
    ]


async def _home(hass: HomeAssistant) -> None:
    floor = fr.async_get(hass).async_create("Ground floor", aliases={"downstairs"})
    area_registry = ar.async_get(hass)
    kitchen = area_registry.async_create("Kitchen", aliases={"cookhouse"}, floor_id=floor.floor_id)
    area_registry.async_create("Cellar")
    area_registry.async_create("x" * 101)
    entry = MockConfigEntry(domain="test")
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={("test", "lamp")}, name="Lamp"
    )
    dr.async_get(hass).async_update_device(device.id, area_id=kitchen.id)
    registry = er.async_get(hass)
    light = registry.async_get_or_create("light", "test", "k1", suggested_object_id="kitchen")
    registry.async_update_entity(
        light.entity_id, aliases={"ceiling light", "Kitchen light", *(f"a{i}" for i in range(30))},
        area_id=kitchen.id,
    )
    lamp = registry.async_get_or_create(
        "light", "test", "lamp", device_id=device.id, suggested_object_id="lamp"
    )
    hass.states.async_set(light.entity_id, "off", {"friendly_name": "Kitchen light"})
    hass.states.async_set(lamp.entity_id, "off", {"friendly_name": "Lamp"})
    hass.states.async_set("sensor.temp", "20", {"friendly_name": "Temp", "device_class": "temperature"})
    hass.states.async_set("light.hidden", "off", {"friendly_name": "Hidden"})
    hass.states.async_set("light.long", "off", {"friendly_name": "y" * 101})
    async_expose_entity(hass, "conversation", "light.hidden", False)


async def test_build_vocabulary(hass: HomeAssistant) -> None:
    await _home(hass)
    vocabulary = async_build_vocabulary(hass)
    assert vocabulary["language"] == "en"
    assert vocabulary["sentences"] == []
    assert vocabulary["floors"] == [
        {"id": "ground_floor", "name": "Ground floor", "aliases": ["downstairs"]}
    ]
    assert {"id": "kitchen", "name": "Kitchen", "aliases": ["cookhouse"], "floor": "ground_floor"} in (
        vocabulary["areas"]
    )
    assert {"id": "cellar", "name": "Cellar", "aliases": [], "floor": None} in vocabulary["areas"]
    assert len(vocabulary["areas"]) == 2
    entities = {entity["id"]: entity for entity in vocabulary["entities"]}
    assert set(entities) == {"light.kitchen", "light.lamp", "sensor.temp"}
    kitchen = entities["light.kitchen"]
    assert kitchen["name"] == "Kitchen light"
    assert kitchen["domain"] == "light"
    assert kitchen["area"] == "kitchen"
    assert len(kitchen["aliases"]) == 20
    assert "Kitchen light" not in kitchen["aliases"]
    assert entities["light.lamp"]["area"] == "kitchen"  # from its device
    assert entities["sensor.temp"]["device_class"] == "temperature"
    assert entities["sensor.temp"]["area"] is None


async def test_published_and_debounced(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, bridge: HassBridge, setup_entry
) -> None:
    await _home(hass)
    await setup_entry()
    await hass.async_block_till_done(wait_background_tasks=True)
    published = _published(mqtt_mock)
    assert len(published) == 1
    assert {entity["id"] for entity in published[0]["entities"]} == {
        "light.kitchen", "light.lamp", "sensor.temp"
    }
    retained = [c for c in mqtt_mock.async_publish.call_args_list if c.args[0] == TOPIC]
    assert retained[0].args[3] is True  # retain

    # A burst of changes: one publication after the cooldown.
    area_registry = ar.async_get(hass)
    area_registry.async_update(area_registry.async_get_area_by_name("Cellar").id, name="Basement")
    async_expose_entity(hass, "conversation", "light.hidden", True)
    await hass.async_block_till_done()
    assert len(_published(mqtt_mock)) == 1
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3))
    await hass.async_block_till_done(wait_background_tasks=True)
    published = _published(mqtt_mock)
    assert len(published) == 2
    assert "Basement" in [area["name"] for area in published[-1]["areas"]]
    assert "light.hidden" in [entity["id"] for entity in published[-1]["entities"]]

    # Nothing changed: nothing sent.
    er.async_get(hass).async_update_entity("light.kitchen", icon="mdi:lamp")
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(_published(mqtt_mock)) == 2

    # The bridge (re)starts: it gets the vocabulary again even though it did not change.
    await bridge.announce()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=9))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(_published(mqtt_mock)) == 3


async def test_entity_limit(hass: HomeAssistant) -> None:
    from unittest.mock import patch

    for index in range(5):
        hass.states.async_set(f"light.l{index}", "off", {"friendly_name": f"Light {index}"})
    with patch("custom_components.hearth.vocabulary.MAX_ENTITIES", 3):
        assert len(async_build_vocabulary(hass)["entities"]) == 3


async def test_build_vocabulary_polite(hass: HomeAssistant) -> None:
    await _home(hass)
    assert "polite" not in async_build_vocabulary(hass)
    assert "polite" not in async_build_vocabulary(hass, polite=False)
    polite = async_build_vocabulary(hass, polite=True)
    assert polite["polite"] is True
    del polite["polite"]
    assert polite == async_build_vocabulary(hass)


async def _set_polite(hass: HomeAssistant, entry_id: str, polite: bool) -> None:
    result = await hass.config_entries.options.async_init(entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "commands"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_POLITE: polite}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_polite_option_published(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, bridge: HassBridge, setup_entry
) -> None:
    await _home(hass)
    entry = await setup_entry()
    await hass.async_block_till_done(wait_background_tasks=True)
    published = _published(mqtt_mock)
    assert len(published) == 1
    # Off (the default): the key is left out, so existing installs publish what they did.
    assert "polite" not in published[0]

    # Turned on in the options: the entry reloads and the vocabulary is sent again, polite.
    await _set_polite(hass, entry.entry_id, True)
    published = _published(mqtt_mock)
    assert len(published) == 2
    assert published[-1]["polite"] is True
    assert published[-1] == {**published[0], "polite": True}
    raw = [c for c in mqtt_mock.async_publish.call_args_list if c.args[0] == TOPIC]
    assert raw[-1].args[3] is True  # retain

    # Turned off again: sent again without the key.
    await _set_polite(hass, entry.entry_id, False)
    published = _published(mqtt_mock)
    assert len(published) == 3
    assert "polite" not in published[-1]
    assert published[-1] == published[0]


async def test_reload_after_start_logs_no_error(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    bridge: HassBridge,
    setup_entry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Set up while Home Assistant starts: all entities are sent once it has started, and a
    reload (options save, reconfigure) afterwards logs no error."""
    hass.set_state(CoreState.not_running)
    entry = await setup_entry()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(_published(mqtt_mock)) == 1
    # Entities set up late in start-up: sent once Home Assistant has started.
    hass.states.async_set("light.late", "off", {"friendly_name": "Late lamp"})
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert "light.late" in [entity["id"] for entity in _published(mqtt_mock)[-1]["entities"]]

    caplog.clear()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
