"""The vocabulary: what the bridge may hear, from the entities exposed to Assist."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.components.homeassistant.exposed_entities import (
    async_listen_entity_updates,
    async_should_expose,
)
from homeassistant.core import CoreState, Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.start import async_at_started

from .const import (
    CONF_POLITE,
    MAX_ALIASES,
    MAX_AREAS,
    MAX_ENTITIES,
    MAX_FLOORS,
    MAX_NAME_LENGTH,
    VOCABULARY_COOLDOWN,
)

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

ASSISTANT = "conversation"


def _name(value: Any) -> str | None:
    """Return a usable name (1–100 characters after trimming), else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_NAME_LENGTH else None


def _aliases(values: Any, name: str | None) -> list[str]:
    """Return up to 20 usable, distinct aliases, sorted, without the name itself."""
    aliases = {
        alias for value in values or () if (alias := _name(value)) and alias != name
    }
    return sorted(aliases)[:MAX_ALIASES]


@callback
def async_build_vocabulary(
    hass: HomeAssistant, *, polite: bool = False
) -> dict[str, Any]:
    """Build the vocabulary payload described in docs/protocol.md.

    `polite` is sent only when true, so the payload of installs without it stays the same.
    """
    entity_registry = er.async_get(hass)
    device_registry = dr.async_get(hass)
    floors = [
        {"id": floor.floor_id, "name": name, "aliases": _aliases(floor.aliases, name)}
        for floor in fr.async_get(hass).async_list_floors()
        if (name := _name(floor.name))
    ][:MAX_FLOORS]
    floor_ids = {floor["id"] for floor in floors}
    areas = [
        {
            "id": area.id,
            "name": name,
            "aliases": _aliases(area.aliases, name),
            "floor": area.floor_id if area.floor_id in floor_ids else None,
        }
        for area in ar.async_get(hass).async_list_areas()
        if (name := _name(area.name))
    ][:MAX_AREAS]
    area_ids = {area["id"] for area in areas}
    entities: list[dict[str, Any]] = []
    for state in sorted(hass.states.async_all(), key=lambda state: state.entity_id):
        if len(entities) >= MAX_ENTITIES:
            _LOGGER.warning(
                "More than %s exposed entities; the rest are left out", MAX_ENTITIES
            )
            break
        if not async_should_expose(hass, ASSISTANT, state.entity_id):
            continue
        if (name := _name(state.name)) is None:
            continue
        aliases: Any = ()
        area_id: str | None = None
        if entry := entity_registry.async_get(state.entity_id):
            aliases = entry.aliases
            area_id = entry.area_id
            if area_id is None and entry.device_id:
                device = device_registry.async_get(entry.device_id)
                area_id = device.area_id if device else None
        entities.append(
            {
                "id": state.entity_id,
                "name": name,
                "aliases": _aliases(aliases, name),
                "domain": state.domain,
                "area": area_id if area_id in area_ids else None,
                "device_class": state.attributes.get("device_class"),
            }
        )
    vocabulary: dict[str, Any] = {
        "language": hass.config.language,
        "areas": areas,
        "floors": floors,
        "entities": entities,
        "sentences": [],
    }
    if polite:
        vocabulary["polite"] = True
    return vocabulary


class VocabularyPublisher:
    """Publishes the vocabulary retained, again (debounced) whenever it may have changed."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self.last_published: str | None = None
        self._force = False
        self._debouncer = Debouncer(
            hass,
            _LOGGER,
            cooldown=VOCABULARY_COOLDOWN,
            immediate=False,
            function=self.async_publish,
        )

    @callback
    def async_start(self) -> None:
        """Publish now and listen for changes."""
        entry = self.entry
        entry.async_on_unload(self._debouncer.async_shutdown)
        for event_type in (
            er.EVENT_ENTITY_REGISTRY_UPDATED,
            dr.EVENT_DEVICE_REGISTRY_UPDATED,
            ar.EVENT_AREA_REGISTRY_UPDATED,
            fr.EVENT_FLOOR_REGISTRY_UPDATED,
        ):
            entry.async_on_unload(
                self.hass.bus.async_listen(event_type, self._async_changed)
            )
        entry.async_on_unload(
            async_listen_entity_updates(self.hass, ASSISTANT, self.async_schedule)
        )
        entry.async_on_unload(
            self.hub.async_on_bridge_online(self._async_bridge_online)
        )
        if self.hass.state is not CoreState.running:
            # Entities are still being set up: send what exists now, then all of them. (The
            # helper's unsubscribe is safe to call after start-up, unlike a listen_once's.)
            entry.async_on_unload(async_at_started(self.hass, self._async_started))
        entry.async_create_background_task(
            self.hass, self.async_publish(), "hearth vocabulary publish"
        )

    @callback
    def _async_changed(self, event: Event[Any]) -> None:
        self.async_schedule()

    @callback
    def _async_started(self, hass: HomeAssistant) -> None:
        self.async_schedule()

    @callback
    def async_schedule(self) -> None:
        """Publish again after the cooldown (changes often come in bursts)."""
        self._debouncer.async_schedule_call()

    @callback
    def _async_bridge_online(self) -> None:
        # A bridge that comes back may have lost its state: send the vocabulary again.
        self._force = True
        self.async_schedule()

    async def async_publish(self) -> None:
        """Publish the vocabulary if it changed since the last time."""
        # Options changes reload the entry, so a changed option is published by the new publisher.
        polite = bool(self.entry.options.get(CONF_POLITE, False))
        payload = json.dumps(
            async_build_vocabulary(self.hass, polite=polite), separators=(",", ":")
        )
        if payload == self.last_published and not self._force:
            return
        self._force = False
        await self.hub.async_publish_raw(
            self.hub.topic("bridge", "vocabulary", "set"), payload, retain=True
        )
        self.last_published = payload
