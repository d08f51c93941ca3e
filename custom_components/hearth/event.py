"""Event entity per satellite: wake word heard, intent recognized, error, question asked, answer."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .const import (
    EVENT_ANSWER,
    EVENT_INTENT,
    EVENT_QUESTION,
    EVENT_TYPES,
    EVENT_WAKE,
)
from .entity import HearthSatelliteEntity, async_setup_hearth_platform

PARALLEL_UPDATES = 0

VOICE_EVENT = EventEntityDescription(
    key="voice", translation_key="voice", event_types=EVENT_TYPES
)


def event_attributes(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Return the attributes of an event; never the spoken words (they may be private)."""
    if event_type == EVENT_WAKE:
        keys: tuple[str, ...] = ("session_id", "wake_word", "source")
        return {key: data.get(key) for key in keys}
    if event_type == EVENT_INTENT:
        intent = data.get("intent") if isinstance(data.get("intent"), dict) else None
        slots = (
            intent.get("slots")
            if intent and isinstance(intent.get("slots"), dict)
            else {}
        )
        return {
            "session_id": data.get("session_id"),
            "intent": intent.get("name") if intent else None,
            "entity_ids": sorted(
                {
                    entity_id
                    for slot in slots.values()
                    if isinstance(slot, dict)
                    for entity_id in slot.get("entity_ids") or ()
                    if isinstance(entity_id, str)
                }
            ),
            "confidence": data.get("confidence"),
        }
    if event_type == EVENT_QUESTION:  # never its `text`: the question says what was heard
        keys = ("session_id", "kind", "reason", "choices", "intents", "entity_ids")
        return {key: data.get(key) for key in keys}
    if event_type == EVENT_ANSWER:
        keys = ("session_id", "outcome", "acted", "choice", "intent")
        return {key: data.get(key) for key in keys}
    return {key: data.get(key) for key in ("session_id", "code", "message")}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the event entities."""
    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [],
        lambda hub, satellite_id: [HearthVoiceEvent(hub, satellite_id, VOICE_EVENT)],
    )


class HearthVoiceEvent(HearthSatelliteEntity, EventEntity):
    """Fires on a satellite's wake, intent, error, question and answer."""

    async def async_added_to_hass(self) -> None:
        """Listen for the satellite's events."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.hub.async_add_event_listener(self.satellite_id, self._handle_event)
        )

    @callback
    def _handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        self._trigger_event(event_type, event_attributes(event_type, data))
        self.async_write_ha_state()
