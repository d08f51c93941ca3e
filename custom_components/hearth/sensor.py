"""Sensors: the bridge's privacy counters and each satellite's voice activity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, Platform, UnitOfInformation
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .const import (
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DOMAIN,
    SATELLITE_STATES,
)
from .entity import HearthEntity, HearthSatelliteEntity, async_setup_hearth_platform
from .hub import HearthHub
from .models import Satellite

PARALLEL_UPDATES = 0

# Home Assistant states hold at most 255 characters.
MAX_STATE_LENGTH = 255


@dataclass(frozen=True, kw_only=True)
class HearthBridgeSensorDescription(SensorEntityDescription):
    """A sensor over the bridge's audit counters."""

    value_fn: Callable[[HearthHub], int | None]


def _counter(hub: HearthHub, key: str) -> int | None:
    return hub.audit.counters.get(key, 0) if hub.audit is not None else None


BRIDGE_SENSORS = (
    HearthBridgeSensorDescription(
        key="blocked_cloud_requests",
        translation_key="blocked_cloud_requests",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        # The bridge's own refusals plus the cloud agents Home Assistant refused.
        value_fn=lambda hub: (_counter(hub, "blocked_cloud_requests") or 0)
        + hub.blocked_cloud_agents,
    ),
    HearthBridgeSensorDescription(
        key="bytes_off_lan",
        translation_key="bytes_off_lan",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda hub: _counter(hub, "bytes_off_lan"),
    ),
)


@dataclass(frozen=True, kw_only=True)
class HearthSatelliteSensorDescription(SensorEntityDescription):
    """A sensor over a satellite's state."""

    value_fn: Callable[[Satellite], str | None]
    attributes_fn: Callable[[Satellite], dict[str, Any] | None] = lambda satellite: None


def _state(satellite: Satellite) -> str | None:
    return satellite.state if satellite.state in SATELLITE_STATES else None


def _transcript(satellite: Satellite) -> str | None:
    utterance = satellite.last_utterance
    if utterance is None or utterance.private or not utterance.text:
        return None
    return utterance.text[:MAX_STATE_LENGTH]


def _processed_by(satellite: Satellite) -> str | None:
    return satellite.last_utterance.locality if satellite.last_utterance else None


def _processed_by_attributes(satellite: Satellite) -> dict[str, Any] | None:
    utterance = satellite.last_utterance
    if utterance is None:
        return None
    return {"engine": utterance.engine, "conversation_agent": utterance.agent_id}


STATE = HearthSatelliteSensorDescription(
    key="state",
    translation_key="state",
    device_class=SensorDeviceClass.ENUM,
    options=SATELLITE_STATES,
    value_fn=_state,
)
TRANSCRIPT = HearthSatelliteSensorDescription(
    key="last_transcript",
    translation_key="last_transcript",
    value_fn=_transcript,
)
PROCESSED_BY = HearthSatelliteSensorDescription(
    key="processed_by",
    translation_key="processed_by",
    entity_category=EntityCategory.DIAGNOSTIC,
    value_fn=_processed_by,
    attributes_fn=_processed_by_attributes,
)


def show_transcripts(entry: HearthConfigEntry, satellite_id: str) -> bool:
    """Return whether the owner lets Home Assistant show a satellite's transcripts."""
    options = entry.options.get(CONF_SATELLITES, {}).get(satellite_id, {})
    return bool(options.get(CONF_SHOW_TRANSCRIPTS, True))


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensors."""

    @callback
    def satellite_sensors(hub: HearthHub, satellite_id: str) -> list[HearthSatelliteEntity]:
        descriptions = [STATE, PROCESSED_BY]
        if show_transcripts(entry, satellite_id):
            descriptions.append(TRANSCRIPT)
        else:
            # Transcripts were turned off: the old sensor (and its history link) goes away.
            registry = er.async_get(hass)
            unique_id = f"{hub.satellite_unique_id(satellite_id)}-{TRANSCRIPT.key}"
            if entity_id := registry.async_get_entity_id(Platform.SENSOR, DOMAIN, unique_id):
                registry.async_remove(entity_id)
        return [HearthSatelliteSensor(hub, satellite_id, description) for description in descriptions]

    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [HearthBridgeSensor(hub, description) for description in BRIDGE_SENSORS],
        satellite_sensors,
    )


class HearthBridgeSensor(HearthEntity, SensorEntity):
    """A bridge counter."""

    entity_description: HearthBridgeSensorDescription

    @property
    def native_value(self) -> int | None:
        """Return the counter."""
        return self.entity_description.value_fn(self.hub)


class HearthSatelliteSensor(HearthSatelliteEntity, SensorEntity):
    """A satellite sensor."""

    entity_description: HearthSatelliteSensorDescription

    @property
    def native_value(self) -> str | None:
        """Return the value."""
        satellite = self.hub.satellites.get(self.satellite_id)
        return self.entity_description.value_fn(satellite) if satellite else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return extra attributes."""
        satellite = self.hub.satellites.get(self.satellite_id)
        return self.entity_description.attributes_fn(satellite) if satellite else None
