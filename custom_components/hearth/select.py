"""Selects for the bridge's audio retention and per-satellite settings.

The bridge's audio retention; per satellite its Assist pipeline, finished-speaking detection,
wake word and when the bridge asks back before acting (the last three applied and confirmed by
the bridge).
"""

from __future__ import annotations

from homeassistant.components.assist_pipeline import (
    AssistPipelineSelect,
    VadSensitivitySelect,
)
from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .const import CONFIRM_MODES, DOMAIN, RETENTION_OPTIONS, WAKE_WORDS
from .entity import HearthEntity, HearthSatelliteEntity, async_setup_hearth_platform
from .hub import HearthHub
from .satellite_settings import (
    active_wake_word,
    confirmed_confirm,
    confirmed_sensitivity,
)

PARALLEL_UPDATES = 0

RETENTION = SelectEntityDescription(
    key="retention",
    translation_key="retention",
    entity_category=EntityCategory.CONFIG,
    options=RETENTION_OPTIONS,
)
WAKE_WORD = SelectEntityDescription(
    key="wake_word",
    translation_key="wake_word",
    entity_category=EntityCategory.CONFIG,
    options=WAKE_WORDS,
)
CONFIRM = SelectEntityDescription(
    key="confirm",
    translation_key="confirm",
    entity_category=EntityCategory.CONFIG,
    options=CONFIRM_MODES,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the selects."""
    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [HearthRetentionSelect(hub, RETENTION)],
        lambda hub, satellite_id: [
            HearthPipelineSelect(hass, hub, satellite_id),
            HearthVadSensitivitySelect(hass, hub, satellite_id),
            HearthWakeWordSelect(hub, satellite_id, WAKE_WORD),
            HearthConfirmSelect(hub, satellite_id, CONFIRM),
        ],
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
        if (
            self.hub.policy is None
            or self.hub.policy.retention not in RETENTION_OPTIONS
        ):
            return None
        return self.hub.policy.retention

    async def async_select_option(self, option: str) -> None:
        """Ask the bridge to change the retention."""
        await self.hub.async_set_policy(retention=option)


class HearthPipelineSelect(HearthSatelliteEntity, AssistPipelineSelect):
    """The Assist pipeline a satellite's commands go to.

    "preferred": as in Hearth's options, Hearth's own pipeline unless another is chosen there.
    """

    def __init__(self, hass: HomeAssistant, hub: HearthHub, satellite_id: str) -> None:
        """Initialize."""
        HearthSatelliteEntity.__init__(
            self, hub, satellite_id, AssistPipelineSelect.entity_description
        )
        AssistPipelineSelect.__init__(
            self, hass, DOMAIN, hub.satellite_unique_id(satellite_id)
        )

    async def async_select_option(self, option: str) -> None:
        """Choose the pipeline, then tell the bridge whether the satellite streams to it."""
        await super().async_select_option(option)
        await self.hub.entry.runtime_data.voice.async_update_modes()


class HearthVadSensitivitySelect(HearthSatelliteEntity, VadSensitivitySelect):
    """How soon the end of a command is heard, applied by the bridge to its endpoint tails."""

    def __init__(self, hass: HomeAssistant, hub: HearthHub, satellite_id: str) -> None:
        """Initialize."""
        HearthSatelliteEntity.__init__(
            self, hub, satellite_id, VadSensitivitySelect.entity_description
        )
        VadSensitivitySelect.__init__(self, hass, hub.satellite_unique_id(satellite_id))

    @property
    def current_option(self) -> str | None:
        """The sensitivity the bridge confirmed (before it said: the last one chosen here)."""
        return (
            confirmed_sensitivity(self.hub, self.satellite_id)
            or self._attr_current_option
        )

    async def async_select_option(self, option: str) -> None:
        """Ask the bridge to apply the sensitivity; shown once it confirms."""
        await self.hub.entry.runtime_data.settings.async_set(
            self.satellite_id, sensitivity=option
        )
        await super().async_select_option(option)


class HearthWakeWordSelect(HearthSatelliteEntity, SelectEntity):
    """The wake word the bridge listens for on the satellite.

    Also the Assist satellite's wake word configuration.
    """

    @property
    def current_option(self) -> str | None:
        """The wake word in force."""
        return active_wake_word(self.hub, self.satellite_id)

    async def async_select_option(self, option: str) -> None:
        """Ask the bridge to listen for another wake word; shown once it confirms."""
        await self.hub.entry.runtime_data.settings.async_set(
            self.satellite_id, wake_word=option
        )


class HearthConfirmSelect(HearthSatelliteEntity, SelectEntity):
    """When the bridge asks back on the satellite before acting: when unsure, only before
    sensitive or house-wide actions, or never."""

    @property
    def current_option(self) -> str | None:
        """The setting the bridge confirmed (None before it said)."""
        return confirmed_confirm(self.hub, self.satellite_id)

    async def async_select_option(self, option: str) -> None:
        """Ask the bridge to apply it; shown once it confirms."""
        await self.hub.entry.runtime_data.settings.async_set(
            self.satellite_id, confirm=option
        )
