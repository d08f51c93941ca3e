"""The engine interfaces every speech-to-text and text-to-speech engine implements, and what
they return (:class:`Transcript`, with the :class:`IntentResult` when the engine recognized it).

An engine declares where the data it is given goes (its :class:`Locality`); the privacy policy
decides from that whether it may be used. Engines that talk to a server resolve and check the
server's address before the first byte is sent (see ``bridge.privacy.locality``).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recognition.verdict import Verdict


class Locality(enum.StrEnum):
    """Where an engine sends what it is given."""

    IN_PROCESS = "in_process"  # never leaves this machine's bridge processes
    LAN = "lan"  # loopback, private, link-local or unique-local addresses only
    CLOUD = "cloud"  # anything else


class CodedError(Exception):
    """An error with a stable machine-readable `code`, published in error events."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EngineError(CodedError):
    """An engine failed."""


@dataclass(frozen=True, slots=True)
class SlotValue:
    """One slot of a recognized intent, as published (`value` is whatever the grammar gives)."""

    name: str
    value: object
    text: str
    entity_ids: tuple[str, ...] = ()


def _field[T](data: Mapping[str, object], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"intent: {key!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class IntentResult:
    """A recognized intent: what the bridge publishes as `intent` and judges before acting on.

    `sensitive`: the action opens the home; `broad`: an action on devices none of which was named.
    """

    name: str
    confidence: float
    sensitive: bool = False
    broad: bool = False
    slots: tuple[SlotValue, ...] = ()
    unsure: str | None = None  # the recognizer doubts its meaning (close_call, ...): never acted on

    def to_json(self) -> dict[str, object]:
        """The published form: {"name", "confidence", "sensitive", "broad", "slots": {name:
        {"value", "text", "entity_ids": [...]}}}."""
        return {
            "name": self.name,
            "confidence": self.confidence,
            "sensitive": self.sensitive,
            "broad": self.broad,
            "slots": {slot.name: {"value": slot.value, "text": slot.text, "entity_ids": list(slot.entity_ids)}
                      for slot in self.slots},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> IntentResult:
        """The inverse of :meth:`to_json`; raises ValueError on anything else."""
        confidence = data.get("confidence")
        if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
            raise ValueError("intent: 'confidence' must be a number")
        slots_data = data.get("slots", {})
        if not isinstance(slots_data, Mapping):
            raise ValueError("intent: 'slots' must be an object")
        slots = []
        for name, slot in slots_data.items():
            if not isinstance(name, str) or not isinstance(slot, Mapping):
                raise ValueError("intent: each slot must be an object under a string name")
            entity_ids = slot.get("entity_ids", [])
            if not isinstance(entity_ids, (list, tuple)) or not all(isinstance(e, str) for e in entity_ids):
                raise ValueError(f"intent: slot {name!r}: 'entity_ids' must be a list of strings")
            slots.append(SlotValue(name, slot.get("value"), _field(slot, "text", str), tuple(entity_ids)))
        return cls(
            name=_field(data, "name", str), confidence=float(confidence),
            sensitive=_field(data, "sensitive", bool), broad=_field(data, "broad", bool), slots=tuple(slots),
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float
    rejected: bool = False  # the recognizer judged the speech not to be a command
    engine: str = ""
    locality: Locality = Locality.IN_PROCESS
    audio_seconds: float = 0.0
    cpu_seconds: float = 0.0
    bytes_sent: int = 0  # bytes that left the bridge's processes for this utterance
    address_class: str = "none"  # "none" | "loopback" | "lan" | "public"
    intent: IntentResult | None = None
    # The engine already ran intent recognition on `text` (`intent` is its answer, None for no
    # match): the bridge must not ask again.
    intent_checked: bool = False
    intent_cpu_seconds: float = 0.0
    # Home Assistant recognizes this utterance (Assist pipeline): nothing to publish, only to audit.
    forwarded: bool = False
    # The engine already decided whether to act (bridge.recognition.verdict.decide): the bridge
    # publishes that verdict instead of deciding on the text and intent alone.
    verdict: Verdict | None = None


class SttStream(abc.ABC):
    """One utterance being transcribed. Audio: 16 kHz, 16-bit signed little-endian, mono."""

    @property
    def complete(self) -> bool:
        """The partial hypothesis is already a whole command (lets the endpointer end sooner)."""
        return False

    async def prime(self, pcm: bytes) -> None:  # noqa: B027 - optional hook
        """Audio from just before the utterance, for calibration only (never transcribed)."""

    @abc.abstractmethod
    async def feed(self, pcm: bytes) -> None: ...

    @abc.abstractmethod
    async def finish(self) -> Transcript: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...


class SpeechToText(abc.ABC):
    name: str
    locality: Locality

    @abc.abstractmethod
    async def open(self, session_id: str, *, area: str | None = None) -> SttStream:
        """Start one utterance. `area` is the speaking satellite's area: the local engine uses it
        for intent recognition ("turn on the lights"); other engines ignore it."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "locality": str(self.locality)}


@dataclass(frozen=True, slots=True)
class SynthesizedAudio:
    pcm: bytes  # 16-bit signed little-endian mono
    rate: int
    engine: str = ""
    locality: Locality = Locality.IN_PROCESS
    bytes_sent: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate if self.rate else 0.0


class TextToSpeech(abc.ABC):
    name: str
    locality: Locality

    @abc.abstractmethod
    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        """Speak `text` as mono 16-bit PCM at `rate` Hz; raises EngineError on failure."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "locality": str(self.locality)}
