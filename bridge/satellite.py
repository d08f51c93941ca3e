"""One satellite: its audio queue and its explicit state machine.

    idle ──wake/button/start──▶ listening ──end of speech──▶ transcribing ──▶ processing ──▶ idle
      ▲                             │                            │                 │
      └──────── error (stop, vanished, engine failure, no speech, timeout) ◀───────┘

Audio arrives from the MQTT dispatcher into a bounded queue (overflow is dropped and counted, so a
flooding satellite cannot grow memory or slow the others); one task per satellite drains it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .engines import EngineError, SttStream, Transcript
from .pipeline.endpoint import Endpointer, EndpointSettings, EndReason
from .pipeline.vad import FrameSplitter, Vad
from .pipeline.wake import GatedWakeWordDetector

if TYPE_CHECKING:
    from .service import Bridge

_LOGGER = logging.getLogger(__name__)

AUDIO_TIMEOUT = 2.0  # no audio for this long while listening: the satellite vanished
MAX_GAP_FILL_BYTES = 8000  # fill at most 250 ms of missing audio with silence
BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit mono
PRIME_BYTES = BYTES_PER_SECOND  # audio before a bridge-detected wake word that calibrates the recognizer
RATE_FACTOR = 1.5  # satellites may catch up after a network hiccup, but not flood
BURST_BYTES = BYTES_PER_SECOND * 3


class State(enum.StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    PROCESSING = "processing"
    RESPONDING = "responding"
    ERROR = "error"


class Protocol(enum.StrEnum):
    HEARTH = "hearth"
    HERMES = "hermes"


@dataclass
class Session:
    id: str
    source: str  # bridge | satellite | button | command | hermes
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


class Satellite:
    def __init__(self, bridge: Bridge, sat_id: str, protocol: Protocol, settings: dict[str, Any]) -> None:
        self.bridge = bridge
        self.id = sat_id
        self.protocol = protocol
        self.online = True
        self.info: dict[str, Any] = {}
        self.state = State.IDLE
        self.session: Session | None = None
        self.wake_word = settings.get("wake_word") or bridge.config["wake"]["model"]
        self.play_rate = settings.get("play_rate") or (22050 if protocol is Protocol.HERMES else 16000)
        self.on_device_wake = False
        self.configured_area: str | None = settings.get("area")
        self.barge_in = False  # the satellite cancels echo, so a wake word may interrupt playback
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queue_cap = bridge.config["limits"]["queue_frames"]
        self._wakeup = asyncio.Event()
        self._wake: GatedWakeWordDetector | None = None
        self._vad = Vad()
        # The last second of audio before a wake: it calibrates the recognizer (never decoded).
        self._recent: deque[bytes] = deque()
        self._recent_bytes = 0
        self._splitter = FrameSplitter()
        self.stream_id: int | None = None
        self.expected_seq = 0
        self.counters: dict[str, int] = {"frames": 0, "dropped_queue_full": 0, "gaps": 0, "late": 0,
                                         "utterances": 0, "wakes": 0, "after_session": 0,
                                         "wake_chunks": 0, "decoded_chunks": 0, "rate_limited": 0}
        self.closed_streams: deque[int] = deque(maxlen=8)
        self._tokens = float(BURST_BYTES)
        self._refilled = time.monotonic()
        self.last_result: dict[str, Any] = {}
        # A session asked for (wake event, button, startListening) but not yet opened: frames that
        # arrive meanwhile queue up behind it, in order.
        self.pending_start: tuple[str, str | None, str | None, int | None, str | None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"satellite-{sat_id}")

    @property
    def area(self) -> str | None:
        """The area the satellite stands in: configured, else what it announced."""
        announced = self.info.get("area")
        return self.configured_area or (announced if isinstance(announced, str) and announced else None)

    # -- called from the MQTT dispatcher (synchronous, must be cheap) -------------------------

    def admit(self, nbytes: int) -> bool:
        """Token bucket: a satellite may send audio at most RATE_FACTOR × real time (with a
        burst allowance). Beyond that its frames are dropped on arrival, so a broken or hostile
        satellite cannot eat the CPU that every other satellite's wake word and VAD need."""
        now = time.monotonic()
        self._tokens = min(BURST_BYTES, self._tokens + (now - self._refilled) * BYTES_PER_SECOND * RATE_FACTOR)
        self._refilled = now
        if nbytes > self._tokens:
            self.counters["rate_limited"] += 1
            self.bridge.report_error("rate_limited", "audio arrives faster than real time; frames dropped", self.id)
            return False
        self._tokens -= nbytes
        return True

    def enqueue(self, pcm: bytes) -> None:
        self.counters["frames"] += 1
        if len(self.queue) >= self.queue_cap:
            self.counters["dropped_queue_full"] += 1
            self.bridge.report_error("queue_full", f"audio queue full ({self.queue_cap} frames); frame dropped",
                                     self.id, self.session.id if self.session else None)
            return
        self.queue.append((time.monotonic(), pcm))
        self._wakeup.set()

    def accept_frame(self, stream_id: int, seq: int, pcm: bytes, last: bool) -> None:
        """Hearth frames: sequence bookkeeping, then the queue."""
        if stream_id != self.stream_id:
            self.stream_id = stream_id
            self.expected_seq = seq
        if seq < self.expected_seq:
            self.counters["late"] += 1
            self.bridge.report_error("late_frame", f"frame {seq} arrived after {self.expected_seq - 1}; dropped",
                                     self.id, self.session.id if self.session else None)
            return
        if seq > self.expected_seq:
            missing = seq - self.expected_seq
            self.counters["gaps"] += missing
            self.bridge.report_error("gap", f"{missing} frame(s) missing before {seq}", self.id,
                                     self.session.id if self.session else None)
            self.enqueue(bytes(min(missing * len(pcm), MAX_GAP_FILL_BYTES)))
        self.expected_seq = seq + 1
        if self.session is not None and self.session.stream_id is None:
            self.session.stream_id = stream_id
        if self.on_device_wake and self.session is None and self.pending_start is None:
            if stream_id in self.closed_streams:
                self.counters["after_session"] += 1  # in flight when the session ended: expected
                return
            self.bridge.report_error("no_session", "audio for a session that never started (no wake event); dropped", self.id)
            return
        self.enqueue(pcm)
        if last and self.session is not None:
            self.queue.append((time.monotonic(), b""))  # marker: the satellite ended the stream
            self._wakeup.set()

    # -- session control ------------------------------------------------------------------------

    def request_session(self, source: str, wake_word: str | None = None, session_id: str | None = None,
                        stream_id: int | None = None, lang: str | None = None) -> bool:
        """Asks the satellite's task to open a session before it handles any later frame."""
        if self.session is not None or self.pending_start is not None:
            return False
        self.pending_start = (source, wake_word, session_id, stream_id, lang)
        self._wakeup.set()
        return True

    async def start_session(self, source: str, wake_word: str | None = None, session_id: str | None = None,
                            stream_id: int | None = None, lang: str | None = None) -> Session | None:
        if self.session is not None:
            return None  # already listening; a second trigger changes nothing
        if self.bridge.is_muted(self.id):
            return None
        session_id = session_id or uuid.uuid4().hex  # known before the engine opens (forwarding names it)
        try:
            stream = await self.bridge.open_stt(self.id, session_id, wake_word=wake_word)
        except EngineError as err:
            self._publish_error(session_id, err.code, err.message)
            return None
        s = self.bridge.config["endpoint"]
        session = Session(
            id=session_id or uuid.uuid4().hex, source=source, wake_word=wake_word, stream=stream,
            endpointer=Endpointer(EndpointSettings(
                silence_tail=s["silence_tail"], complete_tail=s["complete_tail"], vad_tail=s["vad_tail"],
                max_utterance=s["max_utterance"], no_speech_timeout=s["no_speech_timeout"])),
            stream_id=stream_id, hermes_lang=lang,
            kept=[] if self.bridge.retention_enabled() else None,
        )
        if source == "bridge" and self._recent:
            await stream.prime(b"".join(self._recent))
        self._recent.clear()
        self._recent_bytes = 0
        self.session = session
        self._vad.reset()
        self._splitter.reset()
        self.counters["utterances"] += 1
        if source in ("bridge", "satellite", "button"):
            self.counters["wakes"] += 1
        self.set_state(State.LISTENING)
        self.bridge.on_session_started(self, session)
        self._wakeup.set()
        return session

    async def abort(self, code: str, message: str) -> None:
        session = self.session
        if session is None:
            return
        self._close_session(session)
        await session.stream.cancel()
        self._publish_error(session.id, code, message)
        self.bridge.on_session_ended(self, session, ok=False)
        self.set_state(State.IDLE)

    def stop_listening(self) -> None:
        """Hermes stopListening / satellite stream end: finish now with what we have."""
        if self.session is not None:
            self.queue.append((time.monotonic(), b""))
            self._wakeup.set()

    def set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self.bridge.publish_satellite_state(self)

    def _publish_error(self, session_id: str | None, code: str, message: str) -> None:
        self.bridge.publish_session_error(self, session_id, code, message)

    # -- the audio task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self.pending_start is not None:
                source, wake_word, session_id, stream_id, lang = self.pending_start
                try:
                    session = await self.start_session(source, wake_word, session_id, stream_id, lang)
                finally:
                    self.pending_start = None
                if session is not None:
                    self.bridge.on_wake_started(self, session)
                continue
            if not self.queue:
                self._wakeup.clear()
                timeout = AUDIO_TIMEOUT if self.session is not None else None
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    if self.session is not None and time.monotonic() - self.session.last_audio_at >= AUDIO_TIMEOUT:
                        await self.abort("audio_timeout", f"no audio for {AUDIO_TIMEOUT:.0f} s while listening")
                    continue
                continue
            arrived, pcm = self.queue.popleft()
            try:
                await self._process(arrived, pcm)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - one bad frame must not kill the satellite
                _LOGGER.exception("Satellite %s: processing failed", self.id)
                await self.abort("internal_error", f"{type(err).__name__}: {err}")
                self.set_state(State.IDLE)

    async def _process(self, arrived: float, pcm: bytes) -> None:
        # Muting is checked again here: frames queued before a mute are dropped, not decoded.
        if self.bridge.is_muted(self.id):
            if self.session is not None:
                await self.abort("muted", "microphone muted during the session")
            return
        session = self.session
        if session is None:
            self._remember(pcm)
            speech_out = self.bridge.speech_out
            if speech_out is not None and speech_out.is_playing(self.id) and not self.barge_in:
                return  # our own answer coming back through the microphone is not a command
            if not self.on_device_wake and pcm:
                self._detect_wake(pcm)
            return
        if not pcm:  # end-of-stream marker
            await self._finish(session, EndReason.SILENCE, stream_end=True)
            return
        session.last_audio_at = time.monotonic()
        session.audio_bytes += len(pcm)
        if session.kept is not None:
            session.kept.append(pcm)
        await session.stream.feed(pcm)
        if session.ended:
            return  # aborted (muted, stopped, vanished) while we were feeding
        self.counters["decoded_chunks"] += 1
        complete = bool(getattr(session.stream, "complete", False))
        for frame in self._splitter.split(pcm):
            reason = session.endpointer.process(frame, self._vad.process(frame), complete)
            if session.endpointer.last_voiced_ms == session.endpointer.elapsed_ms:
                session.last_voiced_at = arrived
            if reason is not None:
                await self._finish(session, reason)
                return

    def _remember(self, pcm: bytes) -> None:
        self._recent.append(pcm)
        self._recent_bytes += len(pcm)
        while self._recent_bytes - len(self._recent[0]) >= PRIME_BYTES:
            self._recent_bytes -= len(self._recent.popleft())

    def _detect_wake(self, pcm: bytes) -> None:
        self.counters["wake_chunks"] += 1
        if self._wake is None or self._wake.model_name != self.wake_word:
            self._wake = GatedWakeWordDetector(self.wake_word)
        if self._wake.process(pcm):
            self._wake.reset()
            self.request_session("bridge", self.wake_word)

    def _close_session(self, session: Session) -> None:
        self.session = None
        session.ended = True
        if session.stream_id is not None:
            self.closed_streams.append(session.stream_id)
        self.bridge.on_listening_ended(self, session)

    async def _finish(self, session: Session, reason: EndReason, stream_end: bool = False) -> None:
        if session.ended:
            return
        self._close_session(session)
        ended_at = time.monotonic()
        if reason is EndReason.NO_SPEECH:
            await session.stream.cancel()
            self._publish_error(session.id, "no_speech", "no speech heard after the wake word")
            self.bridge.on_session_ended(self, session, ok=False)
            self.set_state(State.IDLE)
            return
        self.set_state(State.TRANSCRIBING)
        try:
            transcript: Transcript = await session.stream.finish()
        except (EngineError, TimeoutError) as err:
            code, message = (err.code, err.message) if isinstance(err, EngineError) else ("stt_timeout", "the recognizer did not answer in time")
            self._publish_error(session.id, code, message)
            self.bridge.on_session_ended(self, session, ok=False)
            self.set_state(State.IDLE)
            return
        done = time.monotonic()
        end_of_speech = session.last_voiced_at or ended_at
        timings = {
            "end_of_speech_to_text_ms": round((done - end_of_speech) * 1000, 1),
            "endpoint_ms": round((ended_at - end_of_speech) * 1000, 1),
            "decode_finish_ms": round((done - ended_at) * 1000, 1),
            "end_reason": str(reason) if not stream_end else "stream_end",
        }
        if session.kept is not None:
            self.bridge.retention.keep(self.id, session.id, b"".join(session.kept), time.time())
            session.kept = None
        self.set_state(State.PROCESSING)
        await self.bridge.on_transcript(self, session, transcript, timings)
        self.bridge.on_session_ended(self, session, ok=True)
        if self.state is State.PROCESSING:
            self.set_state(State.IDLE)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self.session is not None:
            await self.session.stream.cancel()
            self.session = None
        if self._wake is not None:
            self._wake.close()
