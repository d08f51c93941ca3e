"""One satellite: its audio queue and its explicit state machine.

    idle ──wake/button/start──▶ listening ──end of speech──▶ transcribing ──▶ processing ──▶ idle
      ▲                             │                            │                 │
      └──────── error (stop, vanished, engine failure, no speech, timeout) ◀───────┘

Audio arrives from the MQTT dispatcher into a bounded queue (overflow is dropped and counted, so a
flooding satellite cannot grow memory or slow the others); one task per satellite drains it.
Everything outside the satellite (policy, engines, publishing, results) is reached through its
`SatelliteHost`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Final

from ..engines import EngineError, SttStream, Transcript
from ..pipeline.endpoint import Endpointer, EndpointSettings, EndReason
from ..pipeline.vad import FrameSplitter, Vad
from ..pipeline.wake import GatedWakeWordDetector
from ..tasks import spawn
from .host import SatelliteHost, SatelliteSettings
from .session import Protocol, Session, SessionRequest, SessionSource, State, Timings, session_id_from

_LOGGER = logging.getLogger(__name__)

MAX_GAP_FILL_BYTES = 8000  # fill at most 250 ms of missing audio with silence
BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit mono
PRIME_BYTES = BYTES_PER_SECOND  # audio before a bridge-detected wake word that calibrates the recognizer
RATE_FACTOR = 1.5  # satellites may catch up after a network hiccup, but not flood
BURST_BYTES = BYTES_PER_SECOND * 3
HOLD_BYTES = BYTES_PER_SECOND * 3  # audio held while an arbitration decides (far more than its window)
#: queued in place of audio: the satellite ended the stream (a last frame, Hermes stopListening)
END_OF_STREAM: Final = None


class Satellite:
    def __init__(self, host: SatelliteHost, sat_id: str, protocol: Protocol, settings: SatelliteSettings) -> None:
        self.host = host
        self.id = sat_id
        self.protocol = protocol
        self.settings = settings
        self.online = True
        self.info: dict[str, object] = {}  # the satellite's last announced status
        self.state = State.IDLE
        self.session: Session | None = None
        self.wake_word = settings.wake_word
        self.play_rate = settings.play_rate if settings.play_rate is not None else (
            22050 if protocol is Protocol.HERMES else 16000)
        self.on_device_wake = False
        self.configured_area = settings.area
        self.barge_in = False  # the satellite cancels echo, so a wake word may interrupt playback
        self.queue: deque[tuple[float, bytes | None]] = deque()  # (arrival, PCM or END_OF_STREAM)
        self.queue_cap = settings.queue_frames
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
                                         "wake_chunks": 0, "decoded_chunks": 0, "rate_limited": 0,
                                         "stood_down": 0}
        self.closed_streams: deque[int] = deque(maxlen=8)
        self._tokens = float(BURST_BYTES)
        self._refilled = time.monotonic()
        self._rate_dropped = 0  # frames refused by the rate limit since the last accepted one
        self.last_result: dict[str, str] = {}  # the last result's session id, engine and locality
        self.pending_start: SessionRequest | None = None
        #: Audio held since a wake while the bridge decides which of several satellites answers
        #: (bridge.service.arbitration); None when nothing is held.
        self.held: deque[tuple[float, bytes | None]] | None = None
        self._held_bytes = 0
        #: Where the bridge's own wake detections go (the arbiter): (satellite, probability,
        #: speech_db). None: a session is asked for at once.
        self.on_wake: Callable[[Satellite, float | None, float | None], None] | None = None
        self._task = spawn(self._run(), name="satellite",
                           report=lambda code, message: host.report_error(code, message, sat_id))

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
            self._rate_dropped += 1
            self.host.report_error("rate_limited", "audio arrives faster than real time; frames dropped", self.id)
            return False
        self._tokens -= nbytes
        return True

    def enqueue(self, pcm: bytes) -> None:
        self.counters["frames"] += 1
        if not pcm:
            return  # nothing to hear (the end of a stream is END_OF_STREAM, never an empty frame)
        if len(self.queue) >= self.queue_cap:
            self.counters["dropped_queue_full"] += 1
            self.host.report_error("queue_full", f"audio queue full ({self.queue_cap} frames); frame dropped",
                                   self.id, self._session_id())
            return
        self.queue.append((time.monotonic(), pcm))
        self._wakeup.set()

    def accept_frame(self, stream_id: int, seq: int, pcm: bytes, last: bool) -> None:
        """Hearth frames: sequence bookkeeping, then the queue."""
        if stream_id != self.stream_id:
            self.stream_id = stream_id
            self.expected_seq = seq
            self._rate_dropped = 0
        if seq < self.expected_seq:
            self.counters["late"] += 1
            self.host.report_error("late_frame", f"frame {seq} arrived after {self.expected_seq - 1}; dropped",
                                   self.id, self._session_id())
            return
        if seq > self.expected_seq:
            # Frames the rate limit dropped are not lost on the way: their silence is not
            # made up for, or a flooding satellite would get around the limit with silence.
            missing = seq - self.expected_seq - min(seq - self.expected_seq, self._rate_dropped)
            if missing:
                self.counters["gaps"] += missing
                self.host.report_error("gap", f"{missing} frame(s) missing before {seq}", self.id,
                                       self._session_id())
                self._fill_gap(missing * len(pcm))
        self.expected_seq = seq + 1
        self._rate_dropped = 0
        if self.held is not None and self.session is None and self.pending_start is None:
            self.counters["frames"] += 1
            self._hold(time.monotonic(), pcm)
            if last:
                self._hold(time.monotonic(), END_OF_STREAM)
            return
        if self.session is not None and self.session.stream_id is None:
            self.session.stream_id = stream_id
        if self.on_device_wake and self.session is None and self.pending_start is None:
            if stream_id in self.closed_streams:
                self.counters["after_session"] += 1  # in flight when the session ended: expected
                return
            self.host.report_error("no_session", "audio for a session that never started (no wake event); dropped",
                                   self.id)
            return
        self.enqueue(pcm)
        if last and self.session is not None:
            self.queue.append((time.monotonic(), END_OF_STREAM))
            self._wakeup.set()

    def _fill_gap(self, nbytes: int) -> None:
        """Silence for frames lost on the way: at most MAX_GAP_FILL_BYTES, and paid for from the
        rate limit's tokens like any audio (so filling cannot exceed RATE_FACTOR × real time)."""
        fill = min(nbytes, MAX_GAP_FILL_BYTES, max(0, int(self._tokens)))
        fill -= fill % 2
        if fill:
            self._tokens -= fill
            self.enqueue(bytes(fill))

    def _session_id(self) -> str | None:
        return self.session.id if self.session else None

    # -- arbitration: hold the audio after a wake until the bridge decides ------------------------

    def hold(self) -> None:
        """From now on audio is held (bounded), not heard for a wake word nor dropped."""
        if self.held is None:
            self.held = deque()
            self._held_bytes = 0

    def _hold(self, arrived: float, pcm: bytes | None) -> None:
        assert self.held is not None
        if pcm is not None:
            if self._held_bytes + len(pcm) > HOLD_BYTES:
                self.counters["dropped_queue_full"] += 1
                return
            self._held_bytes += len(pcm)
        self.held.append((arrived, pcm))

    def release(self, keep: bool, stream_id: int | None = None) -> None:
        """The decision: kept audio goes first in the queue (the session that opens next hears it
        before anything later); otherwise it is dropped and the stream counts as ended."""
        held, self.held = self.held, None
        self._held_bytes = 0
        if held is None:
            return
        if keep:
            self.queue.extendleft(reversed(held))
            self._wakeup.set()
        else:
            ended = stream_id if stream_id is not None else self.stream_id
            if ended is not None:
                self.closed_streams.append(ended)
            if self._wake is not None:
                self._wake.reset()

    # -- session control ------------------------------------------------------------------------

    def request_session(self, source: SessionSource, wake_word: str | None = None, session_id: str | None = None,
                        stream_id: int | None = None, lang: str | None = None,
                        endpoint: EndpointSettings | None = None) -> bool:
        """Asks the satellite's task to open a session before it handles any later frame; False
        when a session is already open or asked for."""
        if self.session is not None or self.pending_start is not None:
            return False
        self.pending_start = SessionRequest(source, wake_word, session_id, stream_id, lang, endpoint)
        self._wakeup.set()
        return True

    async def _open_session(self, request: SessionRequest) -> Session | None:
        if self.session is not None:
            return None  # already listening; a second trigger changes nothing
        if self.host.is_muted(self.id):
            return None
        # known before the engine opens (forwarding names it); an outside id only as a short token
        session_id = session_id_from(request.session_id) or uuid.uuid4().hex
        try:
            stream = await self.host.open_stream(self, session_id, request.wake_word)
        except EngineError as err:
            self.host.session_failed(self, session_id, err.code, err.message)
            return None
        session = Session(
            id=session_id, source=request.source, wake_word=request.wake_word, stream=stream,
            endpointer=Endpointer(request.endpoint or self.settings.endpoint,
                                  judges_completion=type(stream).complete is not SttStream.complete),
            stream_id=request.stream_id,
            hermes_lang=request.lang, kept=[] if self.host.retention_enabled() else None,
        )
        if request.source is SessionSource.BRIDGE and self._recent:
            try:
                await stream.prime(b"".join(self._recent))
            except EngineError as err:
                await stream.cancel()
                self.host.session_failed(self, session_id, err.code, err.message)
                return None
        if self._recent:  # the room before the session: the endpointer's noise floor from frame one
            session.endpointer.prime(b"".join(self._recent))
        self._recent.clear()
        self._recent_bytes = 0
        self.session = session
        self._vad.reset()
        self._splitter.reset()
        self.counters["utterances"] += 1
        if request.source.is_wake:
            self.counters["wakes"] += 1
        self.set_state(State.LISTENING)
        self.host.session_started(self, session)
        self._wakeup.set()
        return session

    async def abort(self, code: str, message: str) -> None:
        session = self.session
        if session is None:
            return
        self._close_session(session)
        await session.stream.cancel()
        self.host.session_failed(self, session.id, code, message)
        self.host.session_ended(self, session, ok=False)
        self.set_state(State.IDLE)

    def stop_listening(self) -> None:
        """Hermes stopListening / satellite stream end: finish now with what we have."""
        if self.session is not None:
            self.queue.append((time.monotonic(), END_OF_STREAM))
            self._wakeup.set()

    def set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self.host.state_changed(self)

    # -- the audio task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            request = self.pending_start
            if request is not None:
                try:
                    session = await self._open_session(request)
                except Exception as err:  # noqa: BLE001 - a failed start must not kill the satellite
                    _LOGGER.exception("Satellite %s: opening a session failed", self.id)
                    self.host.session_failed(self, request.session_id, "internal_error",
                                             f"{type(err).__name__}: {err}")
                    session = None
                finally:
                    self.pending_start = None
                if session is not None:
                    self.host.wake_started(self, session)
                continue
            if not self.queue:
                self._wakeup.clear()
                if self.session is None:
                    await self._wakeup.wait()  # the common case, without wait_for's timer and task
                    continue
                limit = self.settings.audio_timeout
                try:
                    await asyncio.wait_for(self._wakeup.wait(), limit)
                except TimeoutError:
                    if self.session is not None and time.monotonic() - self.session.last_audio_at >= limit:
                        await self.abort("audio_timeout", f"no audio for {limit:g} s while listening")
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

    async def _process(self, arrived: float, pcm: bytes | None) -> None:
        # Muting is checked again here: frames queued before a mute are dropped, not decoded.
        if self.host.is_muted(self.id):
            if self.session is not None:
                await self.abort("muted", "microphone muted during the session")
            return
        session = self.session
        if session is None:
            if self.held is not None and self.pending_start is None:
                self._hold(arrived, pcm)
                return
            if pcm is None:  # END_OF_STREAM
                return  # the end of a stream whose session is already over
            self._remember(pcm)
            if self.host.is_playing(self.id) and not self.barge_in:
                return  # our own answer coming back through the microphone is not a command
            if not self.on_device_wake:
                self._detect_wake(pcm)
            return
        if pcm is None:  # END_OF_STREAM
            await self._finish(session, EndReason.SILENCE, stream_end=True)
            return
        session.last_audio_at = time.monotonic()
        session.audio_bytes += len(pcm)
        if session.kept is not None:
            session.kept.append(pcm)
        try:
            await session.stream.feed(pcm)
        except EngineError as err:
            _LOGGER.warning("Satellite %s: the recognizer failed: %s", self.id, err.message)
            if not session.ended:
                await self.abort(err.code, err.message)
            return
        if session.ended:
            return  # aborted (muted, stopped, vanished) while we were feeding
        self.counters["decoded_chunks"] += 1
        complete = session.stream.complete
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
            if self._wake is not None:
                self._wake.close()  # the wake word changed: free the old model
            self._wake = GatedWakeWordDetector(self.wake_word)
        if self._wake.process(pcm):
            probability, speech_db = self._wake.probability, self._wake.speech_db()
            self._wake.reset()
            if self.on_wake is None:
                self.request_session(SessionSource.BRIDGE, self.wake_word)
            else:
                self.on_wake(self, probability, speech_db)

    def _close_session(self, session: Session) -> None:
        self.session = None
        session.ended = True
        if session.stream_id is not None:
            self.closed_streams.append(session.stream_id)
        self.host.listening_ended(self, session)

    async def _finish(self, session: Session, reason: EndReason, stream_end: bool = False) -> None:
        if session.ended:
            return
        self._close_session(session)
        ended_at = time.monotonic()
        if reason is EndReason.NO_SPEECH:
            await session.stream.cancel()
            self.host.session_failed(self, session.id, "no_speech", "no speech heard after the wake word")
            self.host.session_ended(self, session, ok=False)
            self.set_state(State.IDLE)
            return
        self.set_state(State.TRANSCRIBING)
        try:
            transcript: Transcript = await session.stream.finish()
        except (EngineError, TimeoutError) as err:
            code, message = (err.code, err.message) if isinstance(err, EngineError) else (
                "stt_timeout", "the recognizer did not answer in time")
            self.host.session_failed(self, session.id, code, message)
            self.host.session_ended(self, session, ok=False)
            self.set_state(State.IDLE)
            return
        done = time.monotonic()
        end_of_speech = session.last_voiced_at or ended_at
        timings = Timings(
            end_of_speech_to_text_ms=round((done - end_of_speech) * 1000, 1),
            endpoint_ms=round((ended_at - end_of_speech) * 1000, 1),
            decode_finish_ms=round((done - ended_at) * 1000, 1),
            end_reason="stream_end" if stream_end else str(reason),
        )
        if session.kept is not None:
            self.host.keep_audio(self.id, session.id, b"".join(session.kept))
            session.kept = None
        self.set_state(State.PROCESSING)
        await self.host.deliver(self, session, transcript, timings)
        self.host.session_ended(self, session, ok=True)
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
            self._wake = None
        self._vad.close()  # back to the pool: pymicro-vad's native state is never freed
