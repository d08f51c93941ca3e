"""The engine interfaces every speech-to-text and text-to-speech engine implements.

An engine declares where the data it is given goes (its :class:`Locality`); the privacy policy
decides from that whether it may be used. Engines that talk to a server resolve and check the
server's address before the first byte is sent (see ``bridge.privacy.locality``).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field


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
    forwarded: bool = False  # Home Assistant recognizes it (stt/forward.py): audit only, no text


class SttStream(abc.ABC):
    """One utterance being transcribed. Audio: 16 kHz, 16-bit signed little-endian, mono."""

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
    async def open(self, session_id: str) -> SttStream: ...

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
