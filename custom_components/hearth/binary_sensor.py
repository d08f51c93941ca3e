"""Connectivity of the bridge and of each satellite."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .entity import HearthEntity, HearthSatelliteEntity, async_setup_hearth_platform

PARALLEL_UPDATES = 0

CONNECTIVITY = BinarySensorEntityDescription(
    key="connectivity",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the connectivity sensors."""
    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [HearthBridgeConnectivity(hub, CONNECTIVITY)],
        lambda hub, satellite_id: [
            HearthSatelliteConnectivity(hub, satellite_id, CONNECTIVITY)
        ],
    )


class HearthBridgeConnectivity(HearthEntity, BinarySensorEntity):
    """Whether the bridge is online: the one entity that stays available to say so."""

    @property
    def available(self) -> bool:
        """Available while Home Assistant's MQTT client is connected."""
        return self.hub.mqtt_connected

    @property
    def is_on(self) -> bool:
        """Return whether the bridge reports itself online."""
        return self.hub.status.online


class HearthSatelliteConnectivity(HearthSatelliteEntity, BinarySensorEntity):
    """Whether a satellite is online."""

    @property
    def available(self) -> bool:
        """Available while the bridge is reachable (it relays the satellite's state)."""
        return self.hub.available

    @property
    def is_on(self) -> bool:
        """Return whether the satellite is online."""
        satellite = self.hub.satellites.get(self.satellite_id)
        return satellite is not None and satellite.online
