"""Forwarding a session's audio to Home Assistant's Assist pipeline instead of recognizing it.

For a satellite whose pipeline mode is `assist` (set by Home Assistant on
`<prefix>/satellite/<sat>/pipeline/set`), the bridge still hears the wake word and the end of
speech, but the command's audio goes to Home Assistant, which runs speech-to-text, the
conversation and text-to-speech itself (docs/protocol.md, "Assist pipeline streaming"):

- `<prefix>/satellite/<sat>/pipeline/start` `{"session_id", "wake_word", "stream_id"}` first;
- then `<prefix>/satellite/<sat>/pipeline/audio`: Hearth's 12-byte frame header + 30 ms of PCM,
  the last frame (possibly empty) flagged at the end of speech.

The audio leaves the bridge through the MQTT broker, so where it goes is the broker's checked
address (the IP the MQTT connection reached), not a host name. Every :meth:`ForwardStt.open`
asks the locality gate with that address class first: under local-only a public broker is
refused (EngineError ``cloud_refused``, counted by the gate) before anything is published. The
stream's `finish()` returns a :class:`Transcript` with ``forwarded=True`` and no text: the bridge
publishes no transcript or intent for it, only a content-free audit entry (engine
`home_assistant`, the broker's locality and address class, the bytes that left the bridge).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from ..engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from ..privacy.gate import LocalityGate
from ..privacy.locality import ADDRESS_CLASSES, CloudRefused, locality_of_class
from ..protocol.hearth import RECOMMENDED_FRAME_BYTES, encode_frame
from ..protocol.messages import PipelineStart

_LOGGER = logging.getLogger(__name__)

ENGINE = "home_assistant"

type Publish = Callable[[str, bytes | PipelineStart], None]
type AddressClassGetter = Callable[[], str]


def stream_id_for(session_id: str) -> int:
    """The frame header's stream id for a forwarded session (stable, from its id)."""
    return zlib.crc32(session_id.encode())


class ForwardStream(SttStream):
    """One session's audio, re-framed in 30 ms chunks and published for Home Assistant.

    Only :meth:`ForwardStt.open` creates one, after the gate allowed the broker's address.
    """

    def __init__(self, publish: Publish, start_topic: str, audio_topic: str, session_id: str,
                 wake_word: str | None, address_class: str) -> None:
        self._publish = publish
        self._audio_topic = audio_topic
        self.session_id = session_id
        self.stream_id = stream_id_for(session_id)
        self._address_class = address_class
        self._locality = locality_of_class(address_class)
        self._buffer = bytearray()
        self._seq = 0
        self._closed = False
        self.bytes_sent = 0
        self.audio_bytes = 0
        publish(start_topic, PipelineStart(session_id, wake_word, self.stream_id))

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
        return Transcript(
            text="", confidence=0.0, engine=ENGINE, locality=self._locality,
            audio_seconds=self.audio_bytes / 32000, bytes_sent=self.bytes_sent,
            address_class=self._address_class, forwarded=True,
        )

    async def cancel(self) -> None:
        # Nothing more is sent: the bridge's fatal `<sat>/error` for the session tells Home
        # Assistant to abandon the run (its audio stream also times out on its own).
        self._closed = True
        self._buffer.clear()


class ForwardStt(SpeechToText):
    """Opens forwarding streams through the locality gate.

    Args:
        publish: queues an MQTT message (topic, bytes or a JSON object).
        topic: ``topic(sat_id, leaf)`` -> ``<prefix>/satellite/<sat_id>/<leaf>``.
        gate: the locality gate; asked on every ``open()`` with the broker's address class.
        broker_address_class: returns the address class (``"loopback"``, ``"lan"`` or
            ``"public"``) of the broker's checked address, the IP the MQTT connection reached.
            Anything else, or an exception, counts as ``"public"`` (fail closed).
    """

    name = ENGINE

    def __init__(self, publish: Publish, topic: Callable[[str, str], str], gate: LocalityGate,
                 broker_address_class: AddressClassGetter) -> None:
        self._publish = publish
        self._topic = topic
        self._gate = gate
        self._broker_address_class = broker_address_class
        # Unknown until the first open() checks the broker: assume the worst.
        self.address_class = "public"
        self.locality = Locality.CLOUD

    def _checked_class(self) -> str:
        try:
            found = self._broker_address_class()
        except Exception:  # noqa: BLE001 - an unknown address is a public one
            _LOGGER.warning("Cannot tell where the MQTT broker is; treating it as public", exc_info=True)
            return "public"
        return found if found in ADDRESS_CLASSES and found != "none" else "public"

    async def open(self, session_id: str, sat_id: str = "", wake_word: str | None = None, *,
                   area: str | None = None) -> ForwardStream:
        """Start forwarding one session (`area` is not used: Home Assistant knows the satellite).

        Raises EngineError ``cloud_refused`` when the policy is local-only and the broker's
        address is public; nothing is published then (not even ``pipeline/start``).
        """
        address_class = self._checked_class()
        try:
            self._gate.check(ENGINE, address_class, host="MQTT broker")
        except CloudRefused as err:
            raise EngineError(
                "cloud_refused",
                f"{ENGINE}: not forwarding audio to Home Assistant's Assist pipeline: the MQTT"
                " broker is at a public address and the policy is local-only",
            ) from err
        self.address_class = address_class
        self.locality = locality_of_class(address_class)
        return ForwardStream(self._publish, self._topic(sat_id, "pipeline/start"),
                             self._topic(sat_id, "pipeline/audio"), session_id, wake_word, address_class)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "address_class": self.address_class}
