"""Forwarding a session's audio to Home Assistant's Assist pipeline instead of recognizing it.

For a satellite whose pipeline mode is `assist` (set by Home Assistant on
`<prefix>/satellite/<sat>/pipeline/set`), the bridge still hears the wake word and the end of
speech, but the command's audio goes to Home Assistant, which runs speech-to-text, the
conversation and text-to-speech itself (docs/protocol.md, "Assist pipeline streaming"):

- `<prefix>/satellite/<sat>/pipeline/start` `{"session_id", "wake_word", "stream_id"}` first;
- then `<prefix>/satellite/<sat>/pipeline/audio`: Hearth's 12-byte frame header + 30 ms of PCM,
  the last frame (possibly empty) flagged at the end of speech.

The stream's `finish()` returns a :class:`ForwardedTranscript` with no text: the bridge publishes
no transcript or intent for it, only a content-free audit entry (engine `home_assistant`,
locality `lan`, the bytes that left the bridge).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from ..protocol.hearth import RECOMMENDED_FRAME_BYTES, encode_frame

ENGINE = "home_assistant"

type Publish = Callable[[str, bytes | dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ForwardedTranscript(Transcript):
    """Home Assistant recognizes this utterance: nothing to publish, only to audit."""

    forwarded: bool = True


def stream_id_for(session_id: str) -> int:
    """The frame header's stream id for a forwarded session (stable, from its id)."""
    return zlib.crc32(session_id.encode())


class ForwardStream(SttStream):
    """One session's audio, re-framed in 30 ms chunks and published for Home Assistant."""

    def __init__(self, publish: Publish, start_topic: str, audio_topic: str, session_id: str,
                 wake_word: str | None, address_class: str) -> None:
        self._publish = publish
        self._audio_topic = audio_topic
        self.session_id = session_id
        self.stream_id = stream_id_for(session_id)
        self._address_class = address_class
        self._buffer = bytearray()
        self._seq = 0
        self._closed = False
        self.bytes_sent = 0
        self.audio_bytes = 0
        publish(start_topic, {"session_id": session_id, "wake_word": wake_word, "stream_id": self.stream_id})

    def _send(self, pcm: bytes, last: bool) -> None:
        frame = encode_frame(self.stream_id, self._seq, pcm, last)
        self._publish(self._audio_topic, frame)
        self._seq += 1
        self.bytes_sent += len(frame)
        self.audio_bytes += len(pcm)

    async def feed(self, pcm: bytes) -> None:
        if self._closed:
            return
        self._buffer += pcm
        while len(self._buffer) >= RECOMMENDED_FRAME_BYTES:
            chunk = bytes(self._buffer[:RECOMMENDED_FRAME_BYTES])
            del self._buffer[:RECOMMENDED_FRAME_BYTES]
            self._send(chunk, last=False)

    async def finish(self) -> Transcript:
        if self._closed:
            raise EngineError("stt_cancelled", "the utterance was cancelled")
        self._closed = True
        self._send(bytes(self._buffer), last=True)  # the rest (maybe empty), flagged last
        self._buffer.clear()
        return ForwardedTranscript(
            text="", confidence=0.0, engine=ENGINE, locality=Locality.LAN,
            audio_seconds=self.audio_bytes / 32000, bytes_sent=self.bytes_sent,
            address_class=self._address_class,
        )

    async def cancel(self) -> None:
        # Nothing more is sent: the bridge's fatal `<sat>/error` for the session tells Home
        # Assistant to abandon the run (its audio stream also times out on its own).
        self._closed = True
        self._buffer.clear()


class ForwardStt(SpeechToText):
    """Opens forwarding streams; `address_class` describes the MQTT broker the audio goes to."""

    name = ENGINE
    locality = Locality.LAN

    def __init__(self, publish: Publish, topic: Callable[[str, str], str], address_class: str = "lan") -> None:
        self._publish = publish
        self._topic = topic
        self.address_class = address_class

    async def open(self, session_id: str, sat_id: str = "", wake_word: str | None = None, *,
                   area: str | None = None) -> ForwardStream:
        return ForwardStream(self._publish, self._topic(sat_id, "pipeline/start"),
                             self._topic(sat_id, "pipeline/audio"), session_id, wake_word, self.address_class)


def broker_address_class(host: str) -> str:
    """Where forwarded audio goes: the MQTT broker's address class (a host name counts as LAN)."""
    from ..privacy.locality import address_class

    text = host.strip().strip("[]")
    if text == "localhost":
        return "loopback"
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return "lan"
    return address_class(host)
