"""Assist pipeline streaming: a satellite's audio from the bridge into Home Assistant's pipeline.

For satellites in `assist` mode (see `VoiceCommands.async_update_modes`) the bridge publishes
`<prefix>/satellite/<sat>/pipeline/start` `{"session_id", "wake_word", "stream_id"}` and then
the command's audio on `.../pipeline/audio` (Hearth's 12-byte frame header + 16 kHz 16-bit mono
PCM, the last frame flagged). Each session becomes an audio stream that the satellite's Assist
satellite entity feeds into its pipeline; the spoken answer goes back as one WAV on
`.../pipeline/play` (docs/protocol.md, "Assist pipeline streaming").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import logging
import struct
from typing import TYPE_CHECKING

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import FLAG_LAST, FRAME_HEADER, PROTOCOL_VERSION, SATELLITE_ID
from .models import parse_json
from .wav import build_wav, wav_parts

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

# No audio for this long: the bridge or the satellite went away, end the stream.
AUDIO_TIMEOUT = 3.0
# At most this much audio per session is buffered (60 s); more is dropped.
MAX_SESSION_BYTES = 60 * 32000
# The largest WAV answer sent on `pipeline/play` (the bridge accepts up to 2,000,000 bytes).
MAX_PLAY_BYTES = 2_000_000


class BridgeAudioStream:
    """One forwarded session: frames in, an async iterator of PCM out."""

    def __init__(
        self,
        satellite_id: str,
        session_id: str,
        stream_id: int | None,
        wake_word: str | None,
    ) -> None:
        """Initialize."""
        self.satellite_id = satellite_id
        self.session_id = session_id
        self.stream_id = stream_id
        self.wake_word = wake_word
        self.cancelled = False
        self.received = 0
        """PCM bytes received from the bridge."""
        self.consumed = 0
        """PCM bytes handed to the pipeline."""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False
        self._next_seq = 0

    @property
    def ended(self) -> bool:
        """Whether the last frame (or a cancel) arrived."""
        return self._ended

    @callback
    def put_frame(self, stream_id: int, seq: int, pcm: bytes, last: bool) -> None:
        """Queue one frame of this session (others' frames and late ones are ignored)."""
        if self._ended or (self.stream_id is not None and stream_id != self.stream_id):
            return
        if seq < self._next_seq:
            return
        self._next_seq = seq + 1
        if pcm and self.received + len(pcm) <= MAX_SESSION_BYTES:
            self.received += len(pcm)
            self._queue.put_nowait(pcm)
        if last:
            self.end()

    @callback
    def end(self, cancelled: bool = False) -> None:
        """No more audio: the stream's iterator finishes."""
        self.cancelled = self.cancelled or cancelled
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)

    async def audio(self) -> AsyncIterator[bytes]:
        """Yield the session's PCM as it arrives, until the last frame or AUDIO_TIMEOUT of silence."""
        while True:
            try:
                async with asyncio.timeout(AUDIO_TIMEOUT):
                    chunk = await self._queue.get()
            except TimeoutError:
                _LOGGER.debug("Audio of session %s stopped arriving", self.session_id)
                self._ended = True
                return
            if chunk is None:
                return
            self.consumed += len(chunk)
            yield chunk


type StreamHandler = Callable[[BridgeAudioStream], None]


class PipelineStreams:
    """Receives `pipeline/start` and `pipeline/audio` and hands sessions to the satellites."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self.sessions: dict[str, BridgeAudioStream] = {}
        self._handlers: dict[str, StreamHandler] = {}

    async def async_start(self) -> None:
        """Subscribe to the bridge's pipeline topics."""
        self.entry.async_on_unload(
            await mqtt.async_subscribe(
                self.hass,
                self.hub.topic("satellite", "+", "pipeline", "start"),
                self._handle_start,
            )
        )
        self.entry.async_on_unload(
            await mqtt.async_subscribe(
                self.hass,
                self.hub.topic("satellite", "+", "pipeline", "audio"),
                self._handle_audio,
                encoding=None,
            )
        )
        self.entry.async_on_unload(self._async_end_all)

    @callback
    def async_register(
        self, satellite_id: str, handler: StreamHandler
    ) -> CALLBACK_TYPE:
        """Call `handler(stream)` for each session the bridge forwards for a satellite."""
        self._handlers[satellite_id] = handler

        @callback
        def remove() -> None:
            if self._handlers.get(satellite_id) is handler:
                del self._handlers[satellite_id]

        return remove

    @callback
    def _async_end_all(self) -> None:
        for stream in self.sessions.values():
            stream.end(cancelled=True)
        self.sessions.clear()

    def _satellite_id(self, topic: str) -> str | None:
        satellite_id = topic[len(self.hub.prefix) + 1 :].split("/")[1]
        return satellite_id if SATELLITE_ID.fullmatch(satellite_id) else None

    @callback
    def _handle_start(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        data = parse_json(msg.payload)
        if data is None or not isinstance(session_id := data.get("session_id"), str):
            return
        stream_id = data.get("stream_id")
        wake_word = data.get("wake_word")
        if (previous := self.sessions.pop(satellite_id, None)) is not None:
            previous.end(cancelled=True)
        if self.hub.keeper.async_withheld(satellite_id, "pipeline stream"):
            return
        stream = BridgeAudioStream(
            satellite_id,
            session_id,
            stream_id if isinstance(stream_id, int) else None,
            wake_word if isinstance(wake_word, str) else None,
        )
        if (handler := self._handlers.get(satellite_id)) is None:
            _LOGGER.warning(
                "Hearth satellite %s streams to Home Assistant, but it has no Assist satellite"
                " entity; its command is dropped",
                satellite_id,
            )
            return
        self.sessions[satellite_id] = stream
        handler(stream)

    @callback
    def _handle_audio(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        if (stream := self.sessions.get(satellite_id)) is None:
            return
        payload = msg.payload
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        if (frame := decode_frame(payload)) is not None:
            stream.put_frame(*frame)

    @callback
    def async_session_failed(self, satellite_id: str, session_id: str | None) -> bool:
        """End the audio of a session the bridge ended with a fatal error; return whether it was one."""
        stream = self.sessions.get(satellite_id)
        if stream is not None and stream.session_id == session_id:
            stream.end(cancelled=True)
            return True
        return False

    @callback
    def async_forget(self, stream: BridgeAudioStream) -> None:
        """Forget a session whose run is over."""
        if self.sessions.get(stream.satellite_id) is stream:
            del self.sessions[stream.satellite_id]


def decode_frame(payload: bytes | bytearray) -> tuple[int, int, bytes, bool] | None:
    """Return (stream id, seq, PCM, last) of one of Hearth's audio frames, else None.

    The frame is the bridge's (docs/protocol.md): a 12-byte header whose first byte is the
    protocol version, then 16-bit PCM.
    """
    if len(payload) < FRAME_HEADER.size:
        return None
    version, flags, _, stream_id, seq = FRAME_HEADER.unpack_from(payload)
    pcm = bytes(payload[FRAME_HEADER.size :])
    if version != PROTOCOL_VERSION or len(pcm) % 2:
        return None
    return stream_id, seq, pcm, bool(flags & FLAG_LAST)


def wav_for_bridge(extension: str, data: bytes) -> bytes | None:
    """Return TTS audio as one plain PCM WAV the bridge can play, or None if it cannot be.

    The bridge converts any PCM rate, width and channel count itself (it has no MP3 decoder or
    ffmpeg); WAV headers written while streaming (data length 0 or 0xFFFFFFFF) are repaired.
    """
    if extension.lower().lstrip(".") != "wav":
        return None
    parts = wav_parts(data)
    if parts is None:
        return None
    fmt, pcm = parts
    if struct.unpack_from("<H", fmt)[0] not in (1, 0xFFFE):
        return None
    wav = build_wav(struct.pack("<H", 1) + fmt[2:16], pcm)
    return wav if len(wav) <= MAX_PLAY_BYTES else None
