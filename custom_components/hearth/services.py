"""The `hearth.mute` and `hearth.purge_history` actions."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.helpers.target import (
    TargetSelection,
    async_extract_referenced_entity_ids,
)

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DURATION,
    DOMAIN,
    SERVICE_MUTE,
    SERVICE_PURGE_HISTORY,
)

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

MUTE_SCHEMA = vol.Schema(
    {
        **cv.TARGET_SERVICE_FIELDS,
        vol.Optional(ATTR_DURATION): vol.All(cv.time_period, cv.positive_timedelta),
    }
)
PURGE_SCHEMA = vol.Schema({vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})


@callback
def _loaded_entries(hass: HomeAssistant) -> list[HearthConfigEntry]:
    return [
        entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]


@callback
def _targeted_satellites(
    hass: HomeAssistant, call: ServiceCall
) -> dict[HearthHub, list[str]]:
    """Return the satellites an action targets, per bridge (all of them without a target)."""
    entries = _loaded_entries(hass)
    if not entries:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="not_loaded"
        )
    targets: dict[HearthHub, list[str]] = defaultdict(list)
    selection = TargetSelection(call.data)
    if not selection.has_any_target:
        for entry in entries:
            hub = entry.runtime_data.hub
            targets[hub].extend(sorted(hub.satellites))
        return targets
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)
    referenced = async_extract_referenced_entity_ids(hass, selection)
    device_ids = set(referenced.referenced_devices)
    for entity_id in referenced.referenced:
        if (entity := entity_registry.async_get(entity_id)) and entity.device_id:
            device_ids.add(entity.device_id)
    for device_id in sorted(device_ids):
        device = device_registry.async_get(device_id)
        for entry in entries:
            hub = entry.runtime_data.hub
            if device and (satellite_id := hub.satellite_for_device(device)):
                targets[hub].append(satellite_id)
                break
        else:
            if device_id in selection.device_ids:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="not_a_satellite",
                    translation_placeholders={
                        "device": (device.name if device else None) or device_id
                    },
                )
    return targets


async def _async_mute(call: ServiceCall) -> None:
    duration = call.data.get(ATTR_DURATION)
    targets = _targeted_satellites(call.hass, call)
    if not any(targets.values()):
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_satellites"
        )
    for hub, satellites in targets.items():
        mute: dict[str, Any] = {"muted": True}
        if duration is not None:
            mute["duration"] = int(duration.total_seconds())
        await hub.async_set_policy(
            microphones={satellite: dict(mute) for satellite in satellites}
        )


async def _async_purge_history(call: ServiceCall) -> None:
    entries = _loaded_entries(call.hass)
    if entry_id := call.data.get(ATTR_CONFIG_ENTRY_ID):
        entries = [entry for entry in entries if entry.entry_id == entry_id]
    if not entries:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="not_loaded"
        )
    for entry in entries:
        await entry.runtime_data.hub.async_purge_history()


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for all bridges)."""
    hass.services.async_register(DOMAIN, SERVICE_MUTE, _async_mute, schema=MUTE_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_PURGE_HISTORY, _async_purge_history, schema=PURGE_SCHEMA
    )
