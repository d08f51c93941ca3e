"""The values one satellite's state machine works with: its states, where a session came from,
a session asked for and a session open, the timings handed over with a transcript, and the
rule that turns session ids from outside into the bridge's own.

Plain data only: nothing here talks to MQTT, engines or the policy.
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from dataclasses import dataclass, field

from ..engines import SttStream
from ..pipeline.endpoint import Endpointer, EndpointSettings


#: A session id as the bridge uses it (in the audit, on every topic): a short printable token.
SESSION_ID = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")


def session_id_from(outside: object) -> str | None:
    """A session id that came from outside (a Hermes `sessionId`, Home Assistant's `session_id`)
    as the bridge uses it. A short printable token (`SESSION_ID`) is kept as it is; anything else
    (too long, spaces, control or non-ASCII characters, not a string) becomes a generated token,
    the same for the same outside id — so an answer that names the outside id again (a Hermes
    `endSession`, `stopListening`) still finds its session. None or "" give None.
    """
    if outside is None or outside == "":
        return None
    if isinstance(outside, str) and SESSION_ID.fullmatch(outside):
        return outside
    raw = outside if isinstance(outside, str) else repr(outside)
    return "x" + hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class State(enum.StrEnum):
    """A satellite's published state (`<prefix>/satellite/<id>/state`, "state")."""

    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    PROCESSING = "processing"
    RESPONDING = "responding"
    ERROR = "error"


class Protocol(enum.StrEnum):
    """How the satellite talks to the bridge."""

    HEARTH = "hearth"
    HERMES = "hermes"


class SessionSource(enum.StrEnum):
    """What opened a session; its value is published as the wake event's "source"."""

    BRIDGE = "bridge"  # the bridge heard the wake word in the satellite's stream
    SATELLITE = "satellite"  # the satellite heard its own wake word
    BUTTON = "button"  # a button on the satellite
    COMMAND = "command"  # the bridge asked to listen (Hermes startListening, a question's answer)
    HERMES = "hermes"  # a Hermes hotword detection from another component

    @property
    def is_wake(self) -> bool:
        """A person woke the satellite (counted in the satellite's "wakes")."""
        return self in (SessionSource.BRIDGE, SessionSource.SATELLITE, SessionSource.BUTTON)


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A session asked for (wake event, button, startListening) but not yet opened: frames that
    arrive meanwhile queue up behind it, in order."""

    source: SessionSource
    wake_word: str | None = None
    session_id: str | None = None  # chosen by the asker (Hermes), else made when the session opens
    stream_id: int | None = None  # the Hearth audio stream the session listens to, when known
    lang: str | None = None  # the language a Hermes startListening asked for
    endpoint: EndpointSettings | None = None  # when the utterance ends, if not the satellite's own


@dataclass
class Session:
    """One utterance being heard, from the wake to the result."""

    id: str
    source: SessionSource
    wake_word: str | None
    stream: SttStream
    endpointer: Endpointer
    started: float = field(default_factory=time.monotonic)
    stream_id: int | None = None
    audio_bytes: int = 0
    last_voiced_at: float = 0.0  # arrival time of the last audio with speech energy
    last_audio_at: float = field(default_factory=time.monotonic)
    hermes_lang: str | None = None
    ended: bool = False
    kept: list[bytes] | None = None  # the utterance's audio, only while retention is "memory"


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time went between the end of speech and the result, in milliseconds rounded to
    0.1 ms; published as the "timings" of the transcript and intent events."""

    end_of_speech_to_text_ms: float
    """From the arrival of the last audio with speech energy to the recognizer's final text."""
    endpoint_ms: float
    """From that end of speech to the moment the utterance was ended (the endpointer's tail)."""
    decode_finish_ms: float
    """From the end of the utterance to the recognizer's final text."""
    end_reason: str
    """Why the utterance ended: an ``EndReason`` value, or "stream_end" when the satellite ended it."""
    intent_ms: float = 0.0
    """Intent recognition; the satellite leaves it 0 and the host fills it in."""

    def to_json(self) -> dict[str, float | str]:
        return {
            "end_of_speech_to_text_ms": round(self.end_of_speech_to_text_ms, 1),
            "endpoint_ms": round(self.endpoint_ms, 1),
            "decode_finish_ms": round(self.decode_finish_ms, 1),
            "end_reason": self.end_reason,
            "intent_ms": round(self.intent_ms, 1),
        }
