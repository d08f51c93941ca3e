"""Per-satellite settings the bridge applies: the wake word, the finished-speaking detection and
when the bridge asks back before acting (`confirm`).

Home Assistant sends a partial update on `<prefix>/satellite/<sat>/settings/set` and waits for
the bridge's answer on `.../settings/result`; the settings in force are in the satellite's
retained `state` (`settings`), so what the entities show is what the bridge confirmed.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.components import mqtt
from homeassistant.components.assist_pipeline import (
    OPTION_PREFERRED,
    Pipeline,
    async_get_pipelines,
)
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er

from .const import CONFIRM_MODES, DOMAIN, REQUEST_TIMEOUT, SATELLITE_ID, WAKE_WORDS
from .models import parse_json
from .requests import PendingRequests

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

# Home Assistant's finished-speaking choices, which the bridge maps to its endpoint tails.
SENSITIVITIES = ["default", "relaxed", "aggressive"]


@callback
def active_wake_word(hub: HearthHub, satellite_id: str) -> str:
    """Return the wake word the bridge listens for on a satellite.

    Chosen in Home Assistant (as the bridge confirmed it), else the one the satellite announced,
    else the bridge's default.
    """
    satellite = hub.satellites.get(satellite_id)
    chosen = satellite.settings.get("wake_word") if satellite else None
    if isinstance(chosen, str) and chosen in WAKE_WORDS:
        return chosen
    if satellite is not None and satellite.wake_word in WAKE_WORDS:
        return satellite.wake_word
    wake = hub.status.engines.get("wake")
    default = wake.get("default_model") if isinstance(wake, dict) else None
    return (
        default if isinstance(default, str) and default in WAKE_WORDS else WAKE_WORDS[0]
    )


@callback
def confirmed_sensitivity(hub: HearthHub, satellite_id: str) -> str | None:
    """Return the finished-speaking sensitivity the bridge confirmed; None before it said."""
    satellite = hub.satellites.get(satellite_id)
    value = satellite.settings.get("sensitivity") if satellite else None
    return value if isinstance(value, str) and value in SENSITIVITIES else None


@callback
def confirmed_confirm(hub: HearthHub, satellite_id: str) -> str | None:
    """Return when the bridge asks back on a satellite, as it confirmed; None before it said."""
    satellite = hub.satellites.get(satellite_id)
    value = satellite.settings.get("confirm") if satellite else None
    return value if isinstance(value, str) and value in CONFIRM_MODES else None


@callback
def chosen_pipeline(
    hass: HomeAssistant, hub: HearthHub, satellite_id: str
) -> str | None:
    """Return the Assist pipeline chosen on a satellite's Assist pipeline select.

    None when it says "preferred" (then the Hearth options decide: Hearth's own pipeline unless
    one is chosen there).
    """
    entity_id = er.async_get(hass).async_get_entity_id(
        Platform.SELECT, DOMAIN, f"{hub.satellite_unique_id(satellite_id)}-pipeline"
    )
    if entity_id is None or (state := hass.states.get(entity_id)) is None:
        return None
    if state.state == OPTION_PREFERRED:
        return None
    pipeline = find_pipeline(hass, name=state.state)
    return pipeline.id if pipeline is not None else None


@callback
def find_pipeline(
    hass: HomeAssistant, *, pipeline_id: str | None = None, name: str | None = None
) -> Pipeline | None:
    """Return the Assist pipeline with this id, or with this name; None if there is none."""
    return next(
        (
            pipeline
            for pipeline in async_get_pipelines(hass)
            if pipeline.id == pipeline_id or pipeline.name == name
        ),
        None,
    )


class SatelliteSettings:
    """Sends settings commands to the bridge and waits for its answers."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self._pending = PendingRequests(hass, hub.bridge_id)

    async def async_start(self) -> None:
        """Listen for the bridge's answers."""
        self.entry.async_on_unload(
            await mqtt.async_subscribe(
                self.hass,
                self.hub.topic("satellite", "+", "settings", "result"),
                self._handle_result,
            )
        )
        self.entry.async_on_unload(self._pending.async_cancel_all)

    @callback
    def _handle_result(self, msg: ReceiveMessage) -> None:
        parts = msg.topic[len(self.hub.prefix) + 1 :].split("/")
        if len(parts) != 4 or not SATELLITE_ID.fullmatch(parts[1]):
            return
        self._pending.async_resolve(parse_json(msg.payload))

    async def async_set(self, satellite_id: str, **changes: str) -> None:
        """Change a satellite's settings on the bridge and wait until it confirms them.

        Raises a translated HomeAssistantError when the bridge refuses or does not answer.
        """
        topic = self.hub.topic("satellite", satellite_id, "settings", "set")

        async def publish(command: dict[str, Any]) -> None:
            await self.hub.signer.async_publish(
                topic, json.dumps(command, separators=(",", ":")).encode()
            )

        result = await self._pending.async_request(publish, changes, REQUEST_TIMEOUT)
        self.hub.signer.async_check_result(result)
        if not result.get("ok"):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="setting_refused",
                translation_placeholders={
                    "satellite": satellite_id,
                    "code": str(result.get("code") or "unknown"),
                    "error": str(result.get("error") or ""),
                },
            )
        if (
            satellite := self.hub.satellites.get(satellite_id)
        ) is not None and isinstance(settings := result.get("settings"), dict):
            satellite.settings = dict(settings)
            self.hub.async_satellite_updated(satellite_id)
        _LOGGER.debug(
            "Hearth satellite %s settings confirmed: %s", satellite_id, changes
        )
