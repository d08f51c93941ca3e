"""Base entities: one for the bridge, one for a satellite; availability decided by the hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub


class HearthEntity(Entity):
    """An entity that shows part of what the bridge published."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: HearthHub, description: EntityDescription) -> None:
        """Initialize."""
        self.hub = hub
        self.entity_description = description
        self._attr_unique_id = f"{hub.bridge_id}-{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, hub.bridge_id)})

    @property
    def available(self) -> bool:
        """Available while the bridge is reachable."""
        return self.hub.available

    async def async_added_to_hass(self) -> None:
        """Listen for the hub's updates."""
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.async_add_listener(self._handle_hub_update))

    @callback
    def _handle_hub_update(self) -> None:
        self.async_write_ha_state()


class HearthSatelliteEntity(HearthEntity):
    """An entity of one satellite."""

    def __init__(
        self, hub: HearthHub, satellite_id: str, description: EntityDescription
    ) -> None:
        """Initialize."""
        super().__init__(hub, description)
        self.satellite_id = satellite_id
        self._attr_unique_id = (
            f"{hub.satellite_unique_id(satellite_id)}-{description.key}"
        )
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, hub.satellite_unique_id(satellite_id))}
        )

    @property
    def available(self) -> bool:
        """Available while the bridge and the satellite are reachable."""
        return self.hub.satellite_available(self.satellite_id)

    async def async_added_to_hass(self) -> None:
        """Listen for the hub's updates of the bridge and of this satellite."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.hub.async_add_listener(self._handle_hub_update, self.satellite_id)
        )


@callback
def async_setup_hearth_platform(
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    bridge_entities: Callable[[HearthHub], list[HearthEntity]],
    satellite_entities: Callable[[HearthHub, str], list[HearthSatelliteEntity]]
    | None = None,
) -> None:
    """Add a platform's bridge entities now and its satellite entities as satellites appear."""
    hub = entry.runtime_data.hub
    async_add_entities(bridge_entities(hub))
    if satellite_entities is None:
        return

    @callback
    def add_satellite(satellite_id: str) -> None:
        async_add_entities(satellite_entities(hub, satellite_id))

    entry.async_on_unload(hub.async_add_satellite_listener(add_satellite))
