"""Select: what audio the bridge keeps (Audio retention)."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .const import RETENTION_OPTIONS
from .entity import HearthEntity, async_setup_hearth_platform

PARALLEL_UPDATES = 0

RETENTION = SelectEntityDescription(
    key="retention",
    translation_key="retention",
    entity_category=EntityCategory.CONFIG,
    options=RETENTION_OPTIONS,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the select."""
    async_setup_hearth_platform(
        entry, async_add_entities, lambda hub: [HearthRetentionSelect(hub, RETENTION)]
    )


class HearthRetentionSelect(HearthEntity, SelectEntity):
    """The bridge's audio retention, as confirmed by the bridge."""

    @property
    def available(self) -> bool:
        """Available once the bridge is reachable and has told its policy."""
        return super().available and self.hub.policy is not None

    @property
    def current_option(self) -> str | None:
        """Return the confirmed retention."""
        if self.hub.policy is None or self.hub.policy.retention not in RETENTION_OPTIONS:
            return None
        return self.hub.policy.retention

    async def async_select_option(self, option: str) -> None:
        """Ask the bridge to change the retention."""
        await self.hub.async_set_policy(retention=option)
