"""Sensors: the bridge's privacy and question counters and each satellite's voice activity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
from homeassistant.util import dt as dt_util

from . import HearthConfigEntry
from .const import CONF_SATELLITES, CONF_SHOW_TRANSCRIPTS, DOMAIN
from .entity import HearthEntity, HearthSatelliteEntity, async_setup_hearth_platform
from .hub import HearthHub
from .models import Satellite, Utterance

PARALLEL_UPDATES = 0

# Sensors that earlier versions created and that are gone (a satellite's "State" duplicated its
# Assist satellite entity): removed from the entity registry at setup.
REMOVED_SATELLITE_SENSORS = ("state",)


@dataclass(frozen=True, kw_only=True)
class HearthBridgeSensorDescription(SensorEntityDescription):
    """A sensor over the bridge's audit counters."""

    value_fn: Callable[[HearthHub], int | None]


def _counter(hub: HearthHub, key: str) -> int | None:
    return hub.audit.counters.get(key, 0) if hub.audit is not None else None


def _questions(hub: HearthHub, key: str) -> int | None:
    return hub.questions.get(key, 0) if hub.questions is not None else None


BRIDGE_SENSORS = (
    HearthBridgeSensorDescription(
        key="blocked_cloud_requests",
        translation_key="blocked_cloud_requests",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        # The bridge's own refusals plus the cloud agents Home Assistant refused.
        value_fn=lambda hub: (
            (_counter(hub, "blocked_cloud_requests") or 0) + hub.blocked_cloud_agents
        ),
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
    # The bridge asking back before acting ("Unlock the front door?"): asked, and answered with
    # yes, no or cancel (the rest ran out, were interrupted or were not clear).
    HearthBridgeSensorDescription(
        key="questions_asked",
        translation_key="questions_asked",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda hub: _questions(hub, "asked"),
    ),
    HearthBridgeSensorDescription(
        key="questions_answered",
        translation_key="questions_answered",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda hub: _questions(hub, "answered"),
    ),
)


@dataclass(frozen=True, kw_only=True)
class HearthSatelliteSensorDescription(SensorEntityDescription):
    """A sensor over a satellite's state."""

    value_fn: Callable[[Satellite], str | None]
    attributes_fn: Callable[[Satellite], dict[str, Any] | None] = lambda satellite: None


#: Where an engine sends what it is given (the bridge's `Locality`).
LOCALITIES = ["in_process", "lan", "cloud"]


def _processed_by(satellite: Satellite) -> str | None:
    locality = satellite.last_utterance.locality if satellite.last_utterance else None
    return locality if locality in LOCALITIES else None


def _processed_by_attributes(satellite: Satellite) -> dict[str, Any] | None:
    utterance = satellite.last_utterance
    if utterance is None:
        return None
    return {"engine": utterance.engine, "conversation_agent": utterance.agent_id}


TRANSCRIPT = SensorEntityDescription(
    key="last_transcript",
    translation_key="last_transcript",
    device_class=SensorDeviceClass.TIMESTAMP,
    # What people said: off until the owner turns it on, and never in the recorder (below).
    entity_registry_enabled_default=False,
)
PROCESSED_BY = HearthSatelliteSensorDescription(
    key="processed_by",
    translation_key="processed_by",
    device_class=SensorDeviceClass.ENUM,
    options=LOCALITIES,
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
    def satellite_sensors(
        hub: HearthHub, satellite_id: str
    ) -> list[HearthSatelliteEntity]:
        registry = er.async_get(hass)
        gone = list(REMOVED_SATELLITE_SENSORS)
        sensors: list[HearthSatelliteEntity] = [
            HearthSatelliteSensor(hub, satellite_id, PROCESSED_BY)
        ]
        if show_transcripts(entry, satellite_id):
            sensors.append(HearthTranscriptSensor(hub, satellite_id, TRANSCRIPT))
        else:
            # Transcripts were turned off: the old sensor (and its history link) goes away.
            gone.append(TRANSCRIPT.key)
        for key in gone:
            unique_id = f"{hub.satellite_unique_id(satellite_id)}-{key}"
            if entity_id := registry.async_get_entity_id(
                Platform.SENSOR, DOMAIN, unique_id
            ):
                registry.async_remove(entity_id)
        return sensors

    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [
            HearthBridgeSensor(hub, description) for description in BRIDGE_SENSORS
        ],
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


class HearthTranscriptSensor(HearthSatelliteEntity, SensorEntity):
    """When the satellite last heard a command; the words in its `text` attribute.

    The state is a timestamp, not the words: Home Assistant's recorder keeps every state, but
    leaves out the attributes an entity names in `_unrecorded_attributes`. So the words can be
    shown (once the owner enables the sensor) without being stored in the history.
    """

    _unrecorded_attributes = frozenset({"text"})

    def __init__(
        self, hub: HearthHub, satellite_id: str, description: SensorEntityDescription
    ) -> None:
        """Initialize."""
        super().__init__(hub, satellite_id, description)
        self._utterance: Utterance | None = None
        self._heard_at: datetime | None = None

    def _utterance_shown(self) -> Utterance | None:
        satellite = self.hub.satellites.get(self.satellite_id)
        utterance = satellite.last_utterance if satellite else None
        if utterance is None or utterance.private or not utterance.text:
            return None
        if utterance is not self._utterance:
            self._utterance = utterance
            self._heard_at = dt_util.utcnow()
        return utterance

    @property
    def native_value(self) -> datetime | None:
        """Return when the words shown were heard."""
        return self._heard_at if self._utterance_shown() else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the words (not recorded)."""
        utterance = self._utterance_shown()
        return {"text": utterance.text if utterance else None}
