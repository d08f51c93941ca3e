"""Assist satellite entities: each Hearth satellite as Home Assistant's voice satellite.

The bridge runs the voice pipeline (wake word, recognition, speech); Home Assistant sees the
satellite's state, and its `assist_satellite.announce` / `start_conversation` actions are spoken
by the bridge with its own local voice. A satellite whose chosen Assist pipeline is allowed
streams its commands into that pipeline instead (`assist_stream`): Home Assistant recognizes,
answers and synthesizes, and the bridge plays the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
import uuid

from homeassistant.components import intent, tts
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType

# Not exported by the component root (its __all__); the argument type of the public
# `async_accept_pipeline_from_satellite`.
from homeassistant.components.assist_pipeline.pipeline import PipelineStage
from homeassistant.components.assist_satellite import (
    AssistSatelliteAnnouncement,
    AssistSatelliteConfiguration,
    AssistSatelliteEntity,
    AssistSatelliteEntityDescription,
    AssistSatelliteEntityFeature,
    AssistSatelliteWakeWord,
)
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .announce_media import async_announcement_wav, tts_message
from .assist_stream import BridgeAudioStream, wav_for_bridge
from .chime import chime_wav, is_default_chime
from .const import ANNOUNCE_START_TIMEOUT, ANNOUNCE_TIMEOUT, DOMAIN, WAKE_WORDS
from .entity import HearthSatelliteEntity, async_setup_hearth_platform
from .hub import HearthHub
from .models import Utterance
from .satellite_settings import SENSITIVITIES, active_wake_word

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

ASSIST_SATELLITE = AssistSatelliteEntityDescription(key="assist_satellite", name=None)

# The bridge's satellite states as Home Assistant's four.
_STATES: dict[str, str] = {
    "idle": "idle",
    "listening": "listening",
    "transcribing": "processing",
    "processing": "processing",
    "responding": "responding",
    "error": "idle",
}


# ---------------------------------------------------------------- Home Assistant's private parts
# Home Assistant has no public API for the three things below; each is used here only.


@callback
def _async_show_state(entity: AssistSatelliteEntity, state: str) -> None:
    """Show a state the bridge reports (idle, listening, processing, responding).

    No public API: `AssistSatelliteEntity.state` is final and set only by the base class (its
    `_set_state`) while Home Assistant runs the pipeline. Hearth's bridge runs it instead.
    """
    from homeassistant.components.assist_satellite.entity import AssistSatelliteState  # noqa: PLC0415

    entity._set_state(AssistSatelliteState(state))  # noqa: SLF001


def _started_conversation(
    entity: AssistSatelliteEntity,
) -> tuple[str | None, str | None]:
    """Return the chat log id and extra system prompt set for `start_conversation`.

    No public API: the base class keeps them for its own pipeline runs only; Hearth's bridge
    hands the answer to `conversation.async_converse`, which needs them to continue the chat.
    """
    return entity._conversation_id, entity._extra_system_prompt  # noqa: SLF001


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


def timer_finished_message(timer: intent.TimerInfo) -> str:
    """Return what the bridge says when a timer ends.

    In English, the bridge's voice's language.
    """
    if timer.name:
        return f"The {timer.name} timer is done."
    parts = [
        f"{count} {unit}"  # "a 5 minute timer": the unit stays singular
        for count, unit in (
            (timer.start_hours, "hour"),
            (timer.start_minutes, "minute"),
            (timer.start_seconds, "second"),
        )
        if count
    ]
    if not parts:
        return "Your timer is done."
    return f"Your {' and '.join(parts)} timer is done."


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
        AssistSatelliteEntityFeature.ANNOUNCE
        | AssistSatelliteEntityFeature.START_CONVERSATION
    )

    # Ask Assist pipelines for WAV answers: the bridge plays PCM WAV (and has no MP3 decoder).
    _attr_tts_options = {tts.ATTR_PREFERRED_FORMAT: "wav"}

    def __init__(self, hub: HearthHub, satellite_id: str) -> None:
        """Initialize."""
        super().__init__(hub, satellite_id, ASSIST_SATELLITE)
        self._bridge_state: str | None = None
        self._speaking: list[_Speaking] = []
        self._stream: BridgeAudioStream | None = None
        self._answer_token: str | None = None
        self._answer_text: str | None = None

    # ------------------------------------------------------------------ state

    async def async_added_to_hass(self) -> None:
        """Follow the bridge's state of this satellite."""
        await super().async_added_to_hass()
        streams = self.hub.entry.runtime_data.streams
        self.async_on_remove(
            streams.async_register(self.satellite_id, self._async_stream)
        )
        self.async_on_remove(
            self.hub.async_add_event_listener(
                self.satellite_id, self._async_bridge_event
            )
        )
        self._async_follow_bridge(write=True)
        self._async_register_timers()

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
        if self._stream is not None:
            return False  # Home Assistant's pipeline run sets the state meanwhile
        if bridge_state == self._bridge_state and not write:
            return False
        self._bridge_state = bridge_state
        _async_show_state(self, _STATES.get(bridge_state or "", "idle"))
        return True

    # ------------------------------------------------------------------ Assist pipeline streaming

    @callback
    def _async_bridge_event(self, event_type: str, data: dict[str, Any]) -> None:
        if (
            event_type == "error"
            and data.get("fatal")
            and self.hub.entry.runtime_data.streams.async_session_failed(
                self.satellite_id, data.get("session_id")
            )
            and self._stream is not None
        ):
            # Stopped, muted, timed out: abandon the run rather than answer half a command.
            self.hub.entry.async_create_background_task(
                self.hass, self._cancel_running_pipeline(), f"{DOMAIN} cancel pipeline"
            )

    @callback
    def _async_stream(self, stream: BridgeAudioStream) -> None:
        """Run a command the bridge forwards through the satellite's Assist pipeline."""
        self.hub.entry.async_create_background_task(
            self.hass,
            self._async_run_stream(stream),
            f"{DOMAIN} pipeline {self.satellite_id}",
        )

    async def _async_run_stream(self, stream: BridgeAudioStream) -> None:
        voice = self.hub.entry.runtime_data.voice
        streams = self.hub.entry.runtime_data.streams
        try:
            # Judged again now: the policy or the pipeline may have changed since the bridge
            # was told to stream. Refused here, the audio goes nowhere.
            if (
                pipeline := await voice.async_choose_pipeline(self.satellite_id)
            ) is None:
                stream.end(cancelled=True)
                await voice.async_update_modes()
                return
            self._stream = stream
            self._answer_token = self._answer_text = None
            try:
                await self.async_accept_pipeline_from_satellite(
                    stream.audio(),
                    start_stage=PipelineStage.STT,
                    # Without a voice the pipeline ends with the answer's text (spoken by the bridge).
                    end_stage=PipelineStage.TTS
                    if pipeline.tts_engine
                    else PipelineStage.INTENT,
                )
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise
                return  # the run was abandoned (the bridge ended the session, a new one began)
            if not stream.cancelled:
                await self._async_play_answer(stream)
        finally:
            streams.async_forget(stream)
            if self._stream is stream:
                self._stream = None
                self.tts_response_finished()
                self._async_follow_bridge(write=True)

    async def _async_play_answer(self, stream: BridgeAudioStream) -> None:
        """Send the pipeline's spoken answer to the bridge; its text if there is no audio."""
        wav: bytes | None = None
        if self._answer_token:
            try:
                extension, data = await self._async_answer_audio(self._answer_token)
            except (HomeAssistantError, ValueError) as err:
                _LOGGER.warning(
                    "No spoken answer for satellite %s: %s", self.satellite_id, err
                )
            else:
                wav = wav_for_bridge(extension, data)
                if wav is None:
                    _LOGGER.warning(
                        "Spoken answer for satellite %s is not a WAV under 2 MB (%s, %d bytes);"
                        " the bridge speaks the text instead",
                        self.satellite_id,
                        extension,
                        len(data),
                    )
        if wav is None:
            if self._answer_text:
                await self.hub.async_publish(
                    self.hub.topic("satellite", self.satellite_id, "response"),
                    {
                        "session_id": stream.session_id,
                        "text": self._answer_text,
                        "continue": False,
                    },
                )
            return
        await self._async_play_wav(wav, "answer")

    async def _async_answer_audio(self, token: str) -> tuple[str, bytes]:
        """Return the pipeline's TTS result stream, whole.

        Its media source id does not resolve here.
        """
        if (stream := tts.async_get_stream(self.hass, token)) is None:
            raise ValueError("the spoken answer's stream is gone")
        data = b"".join([chunk async for chunk in stream.async_stream_result()])
        return stream.extension, data

    @callback
    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """Keep what a streamed run produced: its words, its answer."""
        data = event.data or {}
        if event.type is PipelineEventType.STT_END:
            text = (data.get("stt_output") or {}).get("text")
            satellite = self.hub.satellites.get(self.satellite_id)
            if (
                satellite is not None
                and isinstance(text, str)
                and self._stream is not None
            ):
                policy = self.hub.policy
                private = policy is not None and not policy.publish_transcripts
                satellite.last_utterance = Utterance(
                    text=None if private else text,
                    private=private,
                    engine="home_assistant",
                    locality="lan",
                    session_id=self._stream.session_id,
                )
                self.hub.async_satellite_updated(self.satellite_id)
        elif event.type is PipelineEventType.INTENT_END:
            response = (data.get("intent_output") or {}).get("response") or {}
            speech = (response.get("speech") or {}).get("plain") or {}
            if isinstance(text := speech.get("speech"), str) and text.strip():
                self._answer_text = text
        elif event.type is PipelineEventType.TTS_END:
            token = (data.get("tts_output") or {}).get("token")
            if isinstance(token, str) and token:
                self._answer_token = token
        elif event.type is PipelineEventType.ERROR:
            _LOGGER.info(
                "Assist pipeline run of satellite %s: %s (%s)",
                self.satellite_id,
                data.get("message"),
                data.get("code"),
            )

    @callback
    def _resolve_pipeline(self) -> str | None:
        """Return this satellite's Assist pipeline: chosen in Hearth's options, else preferred.

        Home Assistant consults it for start_conversation (its agent must hold conversations).
        """
        return self.hub.entry.runtime_data.voice.pipeline_for(self.satellite_id)

    # ------------------------------------------------------------------ selects

    @property
    def vad_sensitivity_entity_id(self) -> str | None:
        """Return the satellite's Finished speaking detection select.

        For Home Assistant's own voice activity detection in a streamed pipeline run (the bridge
        uses the same choice). None while the select shows no choice (it is unavailable), so the
        default is used.
        """
        entity_id = er.async_get(self.hass).async_get_entity_id(
            Platform.SELECT,
            DOMAIN,
            f"{self.hub.satellite_unique_id(self.satellite_id)}-vad_sensitivity",
        )
        if entity_id is None or (state := self.hass.states.get(entity_id)) is None:
            return None
        return entity_id if state.state in SENSITIVITIES else None

    # ------------------------------------------------------------------ timers

    @callback
    def _async_register_timers(self) -> None:
        """Make the satellite a timer device: a timer set by voice on it rings on it."""
        if (
            self.registry_entry is None
            or (device_id := self.registry_entry.device_id) is None
        ):
            return
        self.async_on_remove(
            intent.async_register_timer_handler(
                self.hass, device_id, self._async_timer_event
            )
        )

    @callback
    def _async_timer_event(
        self, event_type: intent.TimerEventType, timer: intent.TimerInfo
    ) -> None:
        if event_type is intent.TimerEventType.FINISHED:
            self.hub.entry.async_create_background_task(
                self.hass,
                self._async_ring(timer),
                f"{DOMAIN} timer {self.satellite_id}",
            )

    async def _async_ring(self, timer: intent.TimerInfo) -> None:
        """Ring for a finished timer: the chime, then the bridge says which one."""
        try:
            await self.async_internal_announce(timer_finished_message(timer))
        except HomeAssistantError as err:
            _LOGGER.warning(
                "A timer finished, but Hearth satellite %s could not ring: %s",
                self.satellite_id,
                err,
            )

    # ------------------------------------------------------------------ configuration

    @callback
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        """Return the wake words the bridge knows.

        The one it listens for on this satellite is active.
        """
        return AssistSatelliteConfiguration(
            available_wake_words=[
                AssistSatelliteWakeWord(
                    id=wake_word,
                    wake_word=wake_word.replace("_", " ").title(),
                    trained_languages=["en"],
                )
                for wake_word in WAKE_WORDS
            ],
            active_wake_words=[active_wake_word(self.hub, self.satellite_id)],
            max_active_wake_words=1,
        )

    async def async_set_configuration(
        self, config: AssistSatelliteConfiguration
    ) -> None:
        """Have the bridge listen for the chosen wake word; return once it confirmed."""
        if (
            len(config.active_wake_words) != 1
            or config.active_wake_words[0] not in WAKE_WORDS
        ):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="wake_word_unsupported",
                translation_placeholders={
                    "wake_words": ", ".join(config.active_wake_words) or "-",
                    "supported": ", ".join(WAKE_WORDS),
                },
            )
        await self.hub.entry.runtime_data.settings.async_set(
            self.satellite_id, wake_word=config.active_wake_words[0]
        )

    # ------------------------------------------------------------------ speaking

    async def _resolve_announcement_media_id(
        self,
        message: str,
        media_id: str | None,
        preannounce_media_id: str | None = None,
    ) -> AssistSatelliteAnnouncement:
        """Leave text to the bridge's local voice; keep media ids for `announce_media`.

        Overrides a private method of Home Assistant's `AssistSatelliteEntity`: there is no
        public hook to stop it synthesizing the message itself (the third private part).

        Home Assistant would otherwise synthesize the message with its pipeline's TTS engine
        (possibly a cloud one) and hand over a URL the bridge cannot play. Media is turned into
        a WAV by `announce_media` from the original id, so nothing is resolved (or synthesized)
        here; the pre-announce chime's id is kept as given (played by `_async_preannounce`).
        """
        return AssistSatelliteAnnouncement(
            message=message,
            media_id=media_id or "",
            original_media_id=media_id or "",
            tts_token=None,
            media_id_source="media_id" if media_id else "tts",
            preannounce_media_id=preannounce_media_id,
        )

    async def async_announce(self, announcement: AssistSatelliteAnnouncement) -> None:
        """Speak the announcement's text, or play its media; return once the bridge is done.

        With both a message and media, the bridge speaks the message with its own voice, unless
        the media is Home Assistant's text-to-speech of that same message (then the chosen TTS
        voice is played).
        """
        media_id = announcement.original_media_id
        message = announcement.message.strip()
        await self._async_preannounce(announcement)
        if media_id and (not message or tts_message(media_id) == announcement.message):
            await self._async_play_media(media_id)
        else:
            await self._async_speak(announcement, start_conversation=False)

    async def async_start_conversation(
        self, start_announcement: AssistSatelliteAnnouncement
    ) -> None:
        """Speak, then the bridge listens; the answer continues Home Assistant's conversation."""
        await self._async_preannounce(start_announcement)
        satellite = self.hub.satellites.get(self.satellite_id)
        if satellite is not None:
            # Set by Home Assistant just before: the chat log that holds the start message.
            satellite.continue_conversation(*_started_conversation(self))
        await self._async_speak(start_announcement, start_conversation=True)
        # Home Assistant sets the entity idle after this returns; the bridge is listening by
        # then, so show the bridge's state again right after.
        self.hass.loop.call_soon(self._async_follow_bridge, True)

    async def _async_preannounce(
        self, announcement: AssistSatelliteAnnouncement
    ) -> None:
        """Play the pre-announce chime before the message, and wait until it has played.

        Home Assistant's default chime is replaced by Hearth's own WAV (`chime`); another
        `preannounce_media_id` is converted like announcement media. None: no chime.
        """
        if not (media_id := announcement.preannounce_media_id):
            return
        self._check_can_speak()
        if is_default_chime(media_id):
            wav = chime_wav()
        else:
            wav = await async_announcement_wav(self.hass, media_id, self.hub.policy)
            self._check_can_speak()  # converting took a while
        await self._async_play_wav(wav, "pre-announce chime")

    def _check_can_speak(self) -> None:
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

    async def _async_play_media(self, media_id: str) -> None:
        """Play Home Assistant media (as one WAV on `pipeline/play`); wait like for text."""
        self._check_can_speak()
        wav = await async_announcement_wav(self.hass, media_id, self.hub.policy)
        self._check_can_speak()  # converting took a while
        await self._async_play_wav(wav, "announcement")

    async def _async_play_wav(self, wav: bytes, what: str) -> None:
        """Send one WAV on `pipeline/play` and wait until the satellite has spoken it."""
        speaking = _Speaking()
        self._speaking.append(speaking)
        try:
            await self.hub.async_publish_bytes(
                self.hub.topic("satellite", self.satellite_id, "pipeline", "play"), wav
            )
            await self._async_wait_spoken(speaking, what)
        finally:
            self._speaking.remove(speaking)

    async def _async_wait_spoken(self, speaking: _Speaking, what: str) -> None:
        try:
            async with asyncio.timeout(ANNOUNCE_START_TIMEOUT):
                await speaking.started.wait()
            async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                await speaking.finished.wait()
        except TimeoutError:
            _LOGGER.warning(
                "Hearth satellite %s did not report the end of an %s in time",
                self.satellite_id,
                what,
            )

    async def _async_speak(
        self, announcement: AssistSatelliteAnnouncement, start_conversation: bool
    ) -> None:
        if not announcement.message.strip():
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="announce_media_unsupported",
                translation_placeholders={"media_id": announcement.original_media_id},
            )
        self._check_can_speak()
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
