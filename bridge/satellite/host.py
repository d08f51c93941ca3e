"""What a satellite needs from the service that runs it, and nothing more: the `SatelliteHost`
interface (ask the policy, open a speech stream, publish state and errors, deliver a result) and
the `SatelliteSettings` the host builds from its configuration.

The satellite never sees the bridge itself, so its state machine runs against any host: the
service in production, a fake that records calls in the unit tests.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from ..engines import SttStream, Transcript
from ..pipeline.endpoint import EndpointSettings
from .session import Session, Timings

if typing.TYPE_CHECKING:
    from .machine import Satellite

AUDIO_TIMEOUT = 2.0  # no audio for this long while listening: the satellite vanished


@dataclass(frozen=True, slots=True)
class SatelliteSettings:
    """One satellite's settings, built once by the host from the configuration."""

    wake_word: str
    """The wake word model the bridge listens for (the satellite's own, else the bridge default)."""
    play_rate: int | None = None
    """Sample rate of answers played on the satellite; None: the protocol's default (22050 Hz for
    Hermes, 16000 Hz for Hearth)."""
    area: str | None = None
    """The vocabulary area the satellite stands in; None: whatever the satellite announces."""
    queue_frames: int = 256
    """Audio frames waiting to be handled at most; beyond that frames are dropped and counted."""
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    """When an utterance ends (silence tails, maximum length, no-speech timeout)."""
    audio_timeout: float = AUDIO_TIMEOUT
    """Seconds without audio while listening after which the satellite counts as vanished."""


class SatelliteHost(typing.Protocol):
    """The service a satellite runs in."""

    # -- ask the policy
    def is_muted(self, sat_id: str) -> bool: ...

    def retention_enabled(self) -> bool: ...

    def is_playing(self, sat_id: str) -> bool:
        """An answer is being played on this satellite."""
        ...

    # -- open a speech stream
    async def open_stream(self, sat: Satellite, session_id: str, wake_word: str | None) -> SttStream:
        """The stream that recognizes this session; raises bridge.engines.EngineError when no
        engine may or can serve it."""
        ...

    # -- publish state, errors and the session's lifecycle
    def state_changed(self, sat: Satellite) -> None:
        """Publish the satellite's retained state."""
        ...

    def report_error(self, code: str, message: str, sat_id: str | None, session_id: str | None = None) -> None:
        """A non-fatal error (the host rate-limits them)."""
        ...

    def session_failed(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None:
        """The session (or the attempt to open it) ended without a result."""
        ...

    def wake_started(self, sat: Satellite, session: Session) -> None: ...

    def session_started(self, sat: Satellite, session: Session) -> None: ...

    def listening_ended(self, sat: Satellite, session: Session) -> None: ...

    def session_ended(self, sat: Satellite, session: Session, ok: bool) -> None: ...

    # -- deliver a result
    def keep_audio(self, sat_id: str, session_id: str, pcm: bytes) -> None:
        """The utterance's audio, offered only while retention is "memory"."""
        ...

    async def deliver(self, sat: Satellite, session: Session, transcript: Transcript, timings: Timings) -> None: ...
