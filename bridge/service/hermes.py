"""The Hermes adapter: Rhasspy 2.5 and ESP32 satellites served as Hearth satellites.

It turns `hermes/...` messages into the same satellite operations Hearth's own protocol uses
(audio frames, wake, start/stop listening), answers `hermes/nlu/query` with the bridge's intents,
hands `tts/say`, `endSession` and `playFinished` to speech out, and publishes the Hermes side of
results (textCaptured, intentParsed, intent/<name>, intentNotRecognized, hotword detections and
toggles). The payload shapes themselves live in `bridge.protocol.hermes`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Protocol

from ..audio.wav import WavError, wav_to_pcm16k
from ..engines import EngineError, IntentResult, Transcript
from ..protocol import hermes
from ..protocol.hearth import ProtocolError, parse_json_object
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, Session, SessionSource
from ..settings import HermesSettings
from ..stt.pool import DecoderPool
from .outbox import Outbox

HERMES_SITE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")

class HermesHost(Protocol):
    """What the adapter needs from the bridge."""

    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    def add_satellite(self, sat_id: str, protocol: SatelliteProtocol) -> Satellite | None: ...
    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None: ...
    def is_muted(self, sat_id: str) -> bool: ...
    def drop_muted(self, sat: Satellite) -> None: ...
    def wake(self, sat: Satellite, wake_word: str | None, source: SessionSource, session_id: str | None = None) -> None: ...
    def respond(self, sat_id: str, request: Mapping[str, object]) -> None: ...


class HermesAdapter:
    """Dispatches `hermes/...` topics and publishes Hermes results."""

    def __init__(self, settings: HermesSettings, outbox: Outbox, host: HermesHost, pool: DecoderPool) -> None:
        self.settings = settings
        self.outbox = outbox
        self.host = host
        self._pool = pool
        self.frames = 0

    # -- inbound ----------------------------------------------------------------------------------

    def site(self, site_id: str, create: bool) -> Satellite | None:
        """The Hermes satellite for `site_id` (made on first sight when `create`); never a Hearth one."""
        sat = self.host.satellites.get(site_id)
        if sat is not None:
            return sat if sat.protocol is SatelliteProtocol.HERMES else None
        if not create:
            return None
        if self.settings.sites and site_id not in self.settings.sites:
            raise ProtocolError("unknown_satellite", f"Hermes site {site_id!r} is not in hermes.sites")
        if not HERMES_SITE.match(site_id):
            raise ProtocolError("bad_satellite_id", f"Hermes siteId {site_id!r} is not usable")
        return self.host.add_satellite(site_id, SatelliteProtocol.HERMES)

    def dispatch(self, topic: str, payload: bytes) -> None:
        site = hermes.site_from_audio_topic(topic)
        if site is not None:
            self._audio(topic, site, payload)
            return
        if topic in (hermes.TOGGLE_OFF, hermes.TOGGLE_ON, hermes.TEXT_CAPTURED):
            return
        if topic.endswith("/playFinished"):
            played_site = hermes.site_from_play_finished(topic)
            data = parse_json_object(payload, "playFinished")
            if played_site:
                self.host.respond(played_site, {"played": data.get("id")})
            return
        data = parse_json_object(payload, topic)
        site_id = data.get("siteId", "default")
        if not isinstance(site_id, str):
            raise ProtocolError("invalid_json", f"{topic}: siteId must be a string")
        session_id = data.get("sessionId") if isinstance(data.get("sessionId"), str) else None
        wakeword = hermes.wakeword_from_detected(topic)
        if wakeword is not None:
            sat = self.site(site_id, create=True)
            if sat is None or sat.session is not None:
                return  # our own detection echoed back, or already listening
            if self.host.is_muted(site_id):
                self.host.drop_muted(sat)
                return
            self.host.wake(sat, wakeword, SessionSource.HERMES, session_id)
        elif topic == hermes.START_LISTENING:
            sat = self.site(site_id, create=True)
            if sat is None or self.host.is_muted(site_id):
                return
            lang = data.get("lang") if isinstance(data.get("lang"), str) else None
            wake_word = data.get("wakewordId") if isinstance(data.get("wakewordId"), str) else None
            sat.request_session(SessionSource.COMMAND, wake_word, session_id=session_id, lang=lang)
        elif topic == hermes.STOP_LISTENING:
            sat = self.site(site_id, create=False)
            if sat is not None and sat.session is not None and (session_id is None or sat.session.id == session_id):
                sat.stop_listening()
        elif topic == hermes.NLU_QUERY:
            text = data.get("input")
            if not isinstance(text, str):
                raise ProtocolError("invalid_json", "hermes/nlu/query: 'input' must be a string")
            request_id = data.get("id") if isinstance(data.get("id"), str) else None
            asyncio.create_task(self._answer_nlu_query(site_id, session_id, request_id, text))
        elif topic in (hermes.TTS_SAY, hermes.END_SESSION):
            self.host.respond(site_id, {"hermes": topic, **data})

    def _audio(self, topic: str, site: str, payload: bytes) -> None:
        sat = self.site(site, create=True)
        if sat is None:
            return
        self.frames += 1
        if self.host.is_muted(site):
            self.host.drop_muted(sat)
            return
        try:
            pcm = wav_to_pcm16k(payload)
        except WavError as err:
            self.host.report_error(err.code, f"audio frame: {err}", site, sat.session.id if sat.session else None, topic)
            return
        if sat.admit(len(pcm)):
            sat.enqueue(pcm)

    async def _answer_nlu_query(self, site_id: str, session_id: str | None, request_id: str | None,
                                text: str) -> None:
        try:
            sat = self.host.satellites.get(site_id)
            intent, _cpu = await self._pool.recognize_intent(text, sat.area if sat else None)
        except EngineError as err:
            self.outbox.send(hermes.ERROR_NLU, hermes.error(site_id, session_id, err.message, "nlu"))
            return
        self.intent(site_id, session_id, request_id, text, intent)

    # -- outbound ---------------------------------------------------------------------------------

    def transcript(self, sat: Satellite, session: Session, transcript: Transcript) -> None:
        if transcript.rejected:
            self.outbox.send(hermes.ERROR_ASR, hermes.error(sat.id, session.id, "speech was not recognized as a command", "asr"))
        else:
            self.outbox.send(hermes.TEXT_CAPTURED, hermes.text_captured(
                sat.id, session.id, transcript.text, transcript.confidence,
                session.audio_bytes / 32000, session.wake_word, session.hermes_lang or "en"))

    def intent(self, site_id: str, session_id: str | None, request_id: str | None, text: str,
               intent: IntentResult | None) -> None:
        if intent is None:
            self.outbox.send(hermes.INTENT_NOT_RECOGNIZED, hermes.intent_not_recognized(site_id, session_id, request_id, text))
            return
        slots = []
        for slot in intent.slots:
            entity = slot.entity_ids[0] if slot.entity_ids else slot.name
            value = slot.value if isinstance(slot.value, (str, int, float, bool)) or slot.value is None else str(slot.value)
            slots.append((slot.name, value, slot.text or str(value), entity))
        payload = hermes.intent_parsed(site_id, session_id, request_id, text, intent.name, intent.confidence, slots)
        self.outbox.send(hermes.INTENT_PARSED, payload)
        self.outbox.send(hermes.intent_topic(intent.name), payload)

    def session_started(self, sat: Satellite) -> None:
        self.outbox.send(hermes.TOGGLE_OFF, hermes.toggle(sat.id, "dialogueSession"))

    def session_ended(self, sat: Satellite) -> None:
        self.outbox.send(hermes.TOGGLE_ON, hermes.toggle(sat.id, "dialogueSession"))

    def hotword_detected(self, sat: Satellite, session: Session) -> None:
        model = session.wake_word or "default"
        self.outbox.send(hermes.hotword_detected_topic(model), hermes.hotword_detected(sat.id, model, session.id))

    def tell_muted(self, sat: Satellite, muted: bool) -> None:
        self.outbox.send(hermes.esp32_audio_topic(sat.id), {"mute_input": "true" if muted else "false"})
        self.outbox.send(hermes.TOGGLE_OFF if muted else hermes.TOGGLE_ON, hermes.toggle(sat.id, ""))
