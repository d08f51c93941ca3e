"""Hearth: private, local voice control, reached over MQTT."""

from __future__ import annotations

from dataclasses import dataclass
import logging

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .activity import HearthActivity
from .assist_stream import PipelineStreams
from .const import CONF_PREFIX, DOMAIN
from .hub import HearthHub
from .pairing import async_remove_pairing
from .policy_keeper import async_remove_kept_policy
from .satellite_settings import SatelliteSettings
from .services import async_setup_services
from .vocabulary import VocabularyPublisher
from .voice import VoiceCommands

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [
    Platform.ASSIST_SATELLITE,
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(slots=True)
class HearthData:
    """What one config entry (one bridge) owns while it is loaded."""

    hub: HearthHub
    voice: VoiceCommands
    vocabulary: VocabularyPublisher
    streams: PipelineStreams
    settings: SatelliteSettings
    activity: HearthActivity


type HearthConfigEntry = ConfigEntry[HearthData]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HearthConfigEntry) -> bool:
    """Connect to a bridge through Home Assistant's MQTT integration."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="mqtt_not_ready"
        )
    hub = HearthHub(hass, entry, entry.data[CONF_PREFIX])
    voice = VoiceCommands(hass, entry, hub)
    vocabulary = VocabularyPublisher(hass, entry, hub)
    streams = PipelineStreams(hass, entry, hub)
    settings = SatelliteSettings(hass, entry, hub)
    activity = HearthActivity(hass, entry, hub)
    entry.runtime_data = HearthData(
        hub=hub,
        voice=voice,
        vocabulary=vocabulary,
        streams=streams,
        settings=settings,
        activity=activity,
    )
    await hub.async_start()
    await streams.async_start()
    await settings.async_start()
    await activity.async_start()
    voice.async_start()
    vocabulary.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: HearthConfigEntry) -> bool:
    """Unload a config entry; subscriptions end through `async_on_unload`."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: HearthConfigEntry) -> None:
    """Forget the policy and the command sequence number kept for a removed bridge."""
    await async_remove_kept_policy(hass, entry.entry_id)
    await async_remove_pairing(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: HearthConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow removing a satellite that is not online; never the bridge itself."""
    hub = entry.runtime_data.hub
    satellite_id = hub.satellite_for_device(device)
    if satellite_id is None:
        return False
    if hub.satellite_available(satellite_id):
        return False
    hub.async_forget_satellite(satellite_id)
    return True
