"""Assist satellite entities: each Hearth satellite as Home Assistant's voice satellite.

The bridge runs the voice pipeline (wake word, recognition, speech); Home Assistant sees the
satellite's state, and its `assist_satellite.announce` / `start_conversation` actions are spoken
by the bridge with its own local voice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from homeassistant.components.assist_satellite import (
    AssistSatelliteAnnouncement,
    AssistSatelliteConfiguration,
    AssistSatelliteEntity,
    AssistSatelliteEntityDescription,
    AssistSatelliteEntityFeature,
    AssistSatelliteWakeWord,
)
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.components.assist_pipeline import PipelineEvent
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .const import (
    ANNOUNCE_START_TIMEOUT,
    ANNOUNCE_TIMEOUT,
    DOMAIN,
    WAKE_WORDS,
)
from .entity import HearthSatelliteEntity, async_setup_hearth_platform
from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

ASSIST_SATELLITE = AssistSatelliteEntityDescription(key="assist_satellite", name=None)

# The bridge's satellite states as Home Assistant's four.
_STATES: dict[str, AssistSatelliteState] = {
    "idle": AssistSatelliteState.IDLE,
    "listening": AssistSatelliteState.LISTENING,
    "transcribing": AssistSatelliteState.PROCESSING,
    "processing": AssistSatelliteState.PROCESSING,
    "responding": AssistSatelliteState.RESPONDING,
    "error": AssistSatelliteState.IDLE,
}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up one Assist satellite per Hearth satellite."""
    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [],
        lambda hub, satellite_id: [HearthAssistSatellite(hub, satellite_id)],
    )


class _Speaking:
    """One announcement in flight: started when the bridge responds, done when it stops."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = asyncio.Event()

    def update(self, bridge_state: str | None, available: bool) -> None:
        if not available:
            self.started.set()
            self.finished.set()
        elif bridge_state == "responding":
            self.started.set()
        elif self.started.is_set():
            self.finished.set()


class HearthAssistSatellite(HearthSatelliteEntity, AssistSatelliteEntity):
    """A Hearth satellite as an Assist satellite."""

    entity_description: AssistSatelliteEntityDescription
    _attr_supported_features = (
        AssistSatelliteEntityFeature.ANNOUNCE | AssistSatelliteEntityFeature.START_CONVERSATION
    )

    def __init__(self, hub: HearthHub, satellite_id: str) -> None:
        """Initialize."""
        super().__init__(hub, satellite_id, ASSIST_SATELLITE)
        self._bridge_state: str | None = None
        self._speaking: list[_Speaking] = []

    # ------------------------------------------------------------------ state

    async def async_added_to_hass(self) -> None:
        """Follow the bridge's state of this satellite."""
        await super().async_added_to_hass()
        self._async_follow_bridge(write=True)

    @callback
    def _handle_hub_update(self) -> None:
        if not self._async_follow_bridge(write=False):
            self.async_write_ha_state()

    @callback
    def _async_follow_bridge(self, write: bool) -> bool:
        """Show the bridge's state of the satellite; return whether the state was written."""
        satellite = self.hub.satellites.get(self.satellite_id)
        bridge_state = satellite.state if satellite else None
        available = self.available
        for speaking in self._speaking:
            speaking.update(bridge_state, available)
        if bridge_state == self._bridge_state and not write:
            return False
        self._bridge_state = bridge_state
        self._set_state(_STATES.get(bridge_state or "", AssistSatelliteState.IDLE))
        return True

    @callback
    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """Home Assistant runs no audio pipeline for Hearth satellites: nothing to do."""

    @callback
    def _resolve_pipeline(self) -> str | None:
        """The Assist pipeline chosen for this satellite in Hearth's options, else preferred.

        Home Assistant consults it for start_conversation (its agent must hold conversations).
        """
        return self.hub.entry.runtime_data.voice.pipeline_for(self.satellite_id)

    # ------------------------------------------------------------------ configuration

    @callback
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        """The wake words the bridge knows; the satellite's is the active one."""
        satellite = self.hub.satellites.get(self.satellite_id)
        wake = self.hub.status.engines.get("wake")
        default = wake.get("default_model") if isinstance(wake, dict) else None
        active = (satellite.wake_word if satellite else None) or default or WAKE_WORDS[0]
        return AssistSatelliteConfiguration(
            available_wake_words=[
                AssistSatelliteWakeWord(
                    id=wake_word,
                    wake_word=wake_word.replace("_", " ").title(),
                    trained_languages=["en"],
                )
                for wake_word in WAKE_WORDS
            ],
            active_wake_words=[active],
            max_active_wake_words=1,
        )

    async def async_set_configuration(self, config: AssistSatelliteConfiguration) -> None:
        """Wake words are chosen on the satellite or in the bridge's configuration."""
        if config.active_wake_words != self.async_get_configuration().active_wake_words:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="wake_word_read_only"
            )

    # ------------------------------------------------------------------ speaking

    async def _resolve_announcement_media_id(
        self,
        message: str,
        media_id: str | None,
        preannounce_media_id: str | None = None,
    ) -> AssistSatelliteAnnouncement:
        """Leave text to the bridge's local voice.

        Home Assistant would otherwise synthesize the message with its pipeline's TTS engine
        (possibly a cloud one) and hand over a URL the bridge cannot play. Media is still
        resolved by Home Assistant, so `async_announce` can refuse it clearly.
        """
        if media_id:
            return await super()._resolve_announcement_media_id(
                message, media_id, preannounce_media_id
            )
        return AssistSatelliteAnnouncement(
            message=message,
            media_id="",
            original_media_id="",
            tts_token=None,
            media_id_source="tts",
        )

    async def async_announce(self, announcement: AssistSatelliteAnnouncement) -> None:
        """Speak the announcement's text; return once the bridge has played it."""
        await self._async_speak(announcement, start_conversation=False)

    async def async_start_conversation(
        self, start_announcement: AssistSatelliteAnnouncement
    ) -> None:
        """Speak, then the bridge listens; the answer continues Home Assistant's conversation."""
        satellite = self.hub.satellites.get(self.satellite_id)
        if satellite is not None:
            # Set by Home Assistant just before: the chat log that holds the start message.
            satellite.continue_conversation(
                self._conversation_id, self._extra_system_prompt
            )
        await self._async_speak(start_announcement, start_conversation=True)
        # Home Assistant sets the entity idle after this returns; the bridge is listening by
        # then, so show the bridge's state again right after.
        self.hass.loop.call_soon(self._async_follow_bridge, True)

    async def _async_speak(
        self, announcement: AssistSatelliteAnnouncement, start_conversation: bool
    ) -> None:
        if not announcement.message.strip():
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="announce_media_unsupported",
                translation_placeholders={"media_id": announcement.original_media_id},
            )
        satellite = self.hub.satellites.get(self.satellite_id)
        if not self.available or satellite is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="satellite_unavailable",
                translation_placeholders={"satellite": self.satellite_id},
            )
        if self.hub.microphone_muted(self.satellite_id):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="satellite_muted",
                translation_placeholders={"satellite": self.satellite_id},
            )
        speaking = _Speaking()
        self._speaking.append(speaking)
        try:
            await self.hub.async_publish(
                self.hub.topic("satellite", self.satellite_id, "announce"),
                {
                    "request_id": uuid.uuid4().hex,
                    "text": announcement.message,
                    "start_conversation": start_conversation,
                },
            )
            try:
                async with asyncio.timeout(ANNOUNCE_START_TIMEOUT):
                    await speaking.started.wait()
                async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                    await speaking.finished.wait()
            except TimeoutError:
                _LOGGER.warning(
                    "Hearth satellite %s did not report the end of an announcement in time",
                    self.satellite_id,
                )
        finally:
            self._speaking.remove(speaking)
