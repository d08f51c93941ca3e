"""Answering back: Home Assistant's response text spoken on the satellite that asked.

Hearth satellites get PCM chunks on `<prefix>/satellite/<id>/play` (small enough for ESP32-class
devices, paced just ahead of real time); Hermes satellites get one WAV on
`hermes/audioServer/<siteId>/playBytes/<requestId>` and answer `playFinished`. Speech out owns
what is playing where (for barge-in and echo suppression) and which session was heard where (a
Hermes `endSession` names only the session); it reaches the rest of the bridge through
:class:`SpeechOutHost`. A Hermes request never speaks on a Hearth satellite.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol as TypingProtocol

from .audio.resample import convert
from .audio.wav import WavError, make_wav, parse_wav
from .engines import EngineError, TextToSpeech
from .privacy.audit import AuditEntry, AuditLog, EngineUse
from .protocol import hermes
from .protocol.hearth import Topics, encode_frame
from .protocol.messages import Command
from .satellite import Protocol, Satellite, SessionSource, State, session_id_from
from .tasks import spawn

_LOGGER = logging.getLogger(__name__)

PLAY_CHUNK_BYTES = 1920
PLAY_LEAD_SECONDS = 0.5  # how far ahead of real time chunks are sent
PLAYED_GRACE = 2.0  # after the audio's length, give up waiting for `played`


class WireMessage(TypingProtocol):
    def to_json(self) -> Mapping[str, object]: ...


class Outbox(TypingProtocol):
    topics: Topics

    def send(self, topic: str, payload: bytes | WireMessage | Mapping[str, object], retain: bool = False) -> None: ...


class SpeechOutHost(TypingProtocol):
    """What speech out needs from the bridge."""

    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def audit(self) -> AuditLog: ...
    def is_muted(self, sat_id: str) -> bool: ...
    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None: ...
    def session_failed(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None: ...
    def hermes_site(self, site_id: str) -> Satellite | None: ...


def _answer_pcm(wav: bytes, rate: int) -> bytes:
    """A whole WAV answer as mono 16-bit PCM at `rate`; raises WavError."""
    chunk = parse_wav(wav)
    if (chunk.rate, chunk.width, chunk.channels) == (rate, 2, 1):
        return chunk.data
    return convert(chunk.data, chunk.rate, chunk.width, chunk.channels, rate)


class SpeechOut:
    def __init__(self, bridge: SpeechOutHost, tts: TextToSpeech | None) -> None:
        self.bridge = bridge
        self.tts = tts
        self._playing: dict[str, tuple[str, asyncio.Event, asyncio.Task[None] | None]] = {}
        self.sessions: OrderedDict[str, str] = OrderedDict()  # recent session id -> satellite id

    def remember_session(self, session_id: str, sat_id: str) -> None:
        """So a Hermes endSession (which names only the session) is spoken where it was heard."""
        self.sessions[session_id] = sat_id
        while len(self.sessions) > 256:
            self.sessions.popitem(last=False)

    async def handle(self, sat_id: str, data: Mapping[str, object]) -> None:
        """Entry point for `response`, `announce`, stop/played events and Hermes tts/say, endSession."""
        try:
            if data.get("stop"):
                self.stop_playback(sat_id)
            elif "played" in data:
                self._played(sat_id, data.get("played"))
            elif data.get("hermes") == hermes.TTS_SAY:
                await self._hermes_say(sat_id, data)
            elif data.get("hermes") == hermes.END_SESSION:
                text = data.get("text")
                site = self.sessions.get(session_id_from(data.get("sessionId")) or "", sat_id)
                session = data.get("sessionId")
                if isinstance(text, str) and text.strip() and self._hermes_may_speak(site, hermes.END_SESSION):
                    await self.speak(site, text, session_id=session if isinstance(session, str) else None)
            else:
                text = data.get("text")
                if not isinstance(text, str) or not text.strip():
                    if data.get("announce") and data.get("media_url"):
                        self.bridge.report_error("unsupported", "announcing media URLs is not supported; send text", sat_id)
                    return
                raw_session = data.get("session_id")
                session_id = raw_session if isinstance(raw_session, str) else None
                listen_after = bool(data.get("continue") or data.get("start_conversation"))
                await self.speak(sat_id, text, session_id=session_id, listen_after=listen_after,
                                 request_id=data.get("request_id"))
        except Exception:  # noqa: BLE001 - one bad response must not stop the others
            _LOGGER.exception("Speaking on %s failed", sat_id)

    async def speak(self, sat_id: str, text: str, session_id: str | None = None, listen_after: bool = False,
                    request_id: object = None) -> bool:
        session_id = session_id_from(session_id)  # an outside id as the audit takes it
        sat = self.bridge.satellites.get(sat_id)
        if sat is None:
            self.bridge.report_error("unknown_satellite", f"cannot speak on unknown satellite {sat_id!r}", None)
            return False
        if self.tts is None:
            self.bridge.report_error("no_tts", "no text-to-speech engine configured", sat_id, session_id)
            return False
        if self.bridge.is_muted(sat_id):
            return False
        self.stop_playback(sat_id)
        sat.set_state(State.RESPONDING)
        try:
            audio = await self.tts.synthesize(text, sat.play_rate)
        except EngineError as err:
            self.bridge.session_failed(sat, session_id, err.code, err.message)
            sat.set_state(State.IDLE)
            return False
        self.bridge.audit.record(AuditEntry(
            time=time.time(), satellite=sat_id, session_id=session_id or "",
            engines=(EngineUse("tts", audio.engine or self.tts.name, audio.locality),),
            bytes_off_process=audio.bytes_sent,
            address_class=str(audio.extra.get("address_class", "lan")) if audio.bytes_sent else "none",
        ))
        await self._play(sat, audio.pcm, audio.rate, listen_after)
        return True

    async def play_wav(self, sat_id: str, wav: bytes) -> bool:
        """Plays Home Assistant's spoken answer (`pipeline/play`, a whole WAV) like a response."""
        try:
            return await self._play_wav(sat_id, wav)
        except Exception:  # noqa: BLE001 - one bad answer must not stop the others
            _LOGGER.exception("Playing Home Assistant's answer on %s failed", sat_id)
            return False

    async def _play_wav(self, sat_id: str, wav: bytes) -> bool:
        sat = self.bridge.satellites.get(sat_id)
        if sat is None:
            self.bridge.report_error("unknown_satellite", f"cannot play on unknown satellite {sat_id!r}", None)
            return False
        if self.bridge.is_muted(sat_id):
            return False
        try:
            pcm = await asyncio.to_thread(_answer_pcm, wav, sat.play_rate)  # 2 MB: not on the loop
        except WavError as err:
            self.bridge.report_error(err.code, f"pipeline/play: {err}", sat_id)
            return False
        self.stop_playback(sat_id)
        sat.set_state(State.RESPONDING)
        await self._play(sat, pcm, sat.play_rate, listen_after=False)
        return True

    async def _play(self, sat: Satellite, pcm: bytes, rate: int, listen_after: bool) -> None:
        sat_id = sat.id
        seconds = len(pcm) / 2 / rate if rate else 0.0
        play_id = uuid.uuid4().hex[:12]
        done = asyncio.Event()
        sender = None
        if sat.protocol is Protocol.HEARTH:
            sender = spawn(self._send_chunks(sat, play_id, pcm, rate), name="play-chunks",
                           report=lambda code, message: self.bridge.report_error(code, message, sat_id))
        else:
            self.bridge.outbox.send(hermes.play_bytes_topic(sat_id, play_id), make_wav(pcm, rate=rate))
        self._playing[sat_id] = (play_id, done, sender)
        try:
            await asyncio.wait_for(done.wait(), seconds + PLAY_LEAD_SECONDS + PLAYED_GRACE)
        except TimeoutError:
            pass  # a satellite that never says `played`: assume it finished
        finally:
            current = self._playing.get(sat_id)
            if current and current[0] == play_id:
                self._playing.pop(sat_id, None)
        if sat.state is State.RESPONDING:
            sat.set_state(State.IDLE)
        if listen_after:
            sat.request_session(SessionSource.COMMAND)

    async def _send_chunks(self, sat: Satellite, play_id: str, pcm: bytes, rate: int) -> None:
        stream_id = zlib.crc32(play_id.encode())
        started = time.monotonic()
        bytes_per_second = rate * 2
        total = max(1, (len(pcm) + PLAY_CHUNK_BYTES - 1) // PLAY_CHUNK_BYTES)
        for seq in range(total):
            chunk = pcm[seq * PLAY_CHUNK_BYTES : (seq + 1) * PLAY_CHUNK_BYTES]
            due = started + (seq * PLAY_CHUNK_BYTES) / bytes_per_second - PLAY_LEAD_SECONDS
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.bridge.outbox.send(self.bridge.outbox.topics.satellite(sat.id, "play"),
                                encode_frame(stream_id, seq, chunk, last=seq == total - 1))

    def _played(self, sat_id: str, play_id: object) -> None:
        current = self._playing.get(sat_id)
        if current and (play_id is None or play_id == current[0]):
            current[1].set()

    def stop_playback(self, sat_id: str) -> None:
        current = self._playing.pop(sat_id, None)
        if current is None:
            return
        _, done, sender = current
        if sender is not None:
            sender.cancel()
        done.set()
        sat = self.bridge.satellites.get(sat_id)
        if sat is not None and sat.protocol is Protocol.HEARTH:
            self.bridge.outbox.send(self.bridge.outbox.topics.satellite(sat_id, "command"), Command("stop_playback"))

    def is_playing(self, sat_id: str) -> bool:
        return sat_id in self._playing

    def _hermes_may_speak(self, site_id: str, topic: str) -> bool:
        """A Hermes request speaks only on a Hermes site (never on a Hearth satellite); refused and counted."""
        sat = self.bridge.satellites.get(site_id)
        if sat is None or sat.protocol is Protocol.HERMES:
            return True
        self.bridge.report_error("hermes_site_conflict", f"{topic} would speak on Hearth satellite {site_id!r}; "
                                 "refused", None, None, topic)
        return False

    async def _hermes_say(self, site_id: str, data: Mapping[str, object]) -> None:
        text = data.get("text")
        request_id = data.get("id")
        session_id = data.get("sessionId")
        if not self._hermes_may_speak(site_id, hermes.TTS_SAY):
            return
        if isinstance(text, str) and text.strip():
            if self.bridge.satellites.get(site_id) is None:
                self.bridge.hermes_site(site_id)  # a say may precede any audio
            await self.speak(site_id, text, session_id=session_id if isinstance(session_id, str) else None)
        self.bridge.outbox.send(hermes.SAY_FINISHED, hermes.PlayFinished(
            site_id, request_id, session_id if isinstance(session_id, str) else None))
