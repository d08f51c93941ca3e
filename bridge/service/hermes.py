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

HERMES_SITE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")  # matched whole

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
        if not HERMES_SITE.fullmatch(site_id):
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
            played = hermes.PlayFinished.from_json({**parse_json_object(payload, "playFinished"), "siteId": played_site or ""})
            if played_site:
                self.host.respond(played_site, {"played": played.request_id})
            return
        data = parse_json_object(payload, topic)
        wakeword = hermes.wakeword_from_detected(topic)
        if wakeword is not None:
            detected = hermes.SiteRequest.from_json(data, topic)
            sat = self.site(detected.site_id, create=True)
            if sat is None or sat.session is not None:
                return  # our own detection echoed back, or already listening
            if self.host.is_muted(detected.site_id):
                self.host.drop_muted(sat)
                return
            self.host.wake(sat, wakeword, SessionSource.HERMES, detected.session_id)
        elif topic == hermes.START_LISTENING:
            start = hermes.StartListening.from_json(data)
            sat = self.site(start.site_id, create=True)
            if sat is None or self.host.is_muted(start.site_id):
                return
            sat.request_session(SessionSource.COMMAND, start.wakeword_id, session_id=start.session_id, lang=start.lang)
        elif topic == hermes.STOP_LISTENING:
            stop = hermes.SiteRequest.from_json(data, topic)
            sat = self.site(stop.site_id, create=False)
            if sat is not None and sat.session is not None and stop.session_id in (None, sat.session.id):
                sat.stop_listening()
        elif topic == hermes.NLU_QUERY:
            asyncio.create_task(self._answer_nlu_query(hermes.NluQuery.from_json(data)))
        elif topic in (hermes.TTS_SAY, hermes.END_SESSION):
            self.host.respond(hermes.SiteRequest.from_json(data, topic).site_id, {"hermes": topic, **data})

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

    async def _answer_nlu_query(self, query: hermes.NluQuery) -> None:
        try:
            sat = self.host.satellites.get(query.site_id)
            intent, _cpu = await self._pool.recognize_intent(query.text, sat.area if sat else None, query=True)
        except EngineError as err:  # too long, too slow (worker replaced), too many waiting, no worker
            self.host.report_error(err.code, f"hermes/nlu/query: {err.message}", topic=hermes.NLU_QUERY)
            self.outbox.send(hermes.ERROR_NLU,
                             hermes.HermesError(query.site_id, query.session_id, err.message, err.code))
            return
        self.intent(query.site_id, query.session_id, query.request_id, query.text, intent)

    # -- outbound ---------------------------------------------------------------------------------

    def transcript(self, sat: Satellite, session: Session, transcript: Transcript) -> None:
        if transcript.rejected:
            self.outbox.send(hermes.ERROR_ASR, hermes.HermesError(
                sat.id, session.id, "speech was not recognized as a command", "asr"))
        else:
            self.outbox.send(hermes.TEXT_CAPTURED, hermes.TextCaptured(
                sat.id, session.id, transcript.text, transcript.confidence,
                session.audio_bytes / 32000, session.wake_word, session.hermes_lang or "en"))

    def intent(self, site_id: str, session_id: str | None, request_id: str | None, text: str,
               intent: IntentResult | None) -> None:
        if intent is None:
            self.outbox.send(hermes.INTENT_NOT_RECOGNIZED, hermes.IntentNotRecognized(site_id, session_id, request_id, text))
            return
        slots = []
        for slot in intent.slots:
            entity = slot.entity_ids[0] if slot.entity_ids else slot.name
            value = slot.value if isinstance(slot.value, (str, int, float, bool)) or slot.value is None else str(slot.value)
            slots.append(hermes.Slot(slot.name, value, slot.text or str(value), entity))
        parsed = hermes.IntentParsed(site_id, session_id, request_id, text, intent.name, intent.confidence, tuple(slots))
        self.outbox.send(hermes.INTENT_PARSED, parsed)
        self.outbox.send(hermes.intent_topic(intent.name), parsed)

    def session_started(self, sat: Satellite) -> None:
        self.outbox.send(hermes.TOGGLE_OFF, hermes.Toggle(sat.id, "dialogueSession"))

    def session_ended(self, sat: Satellite) -> None:
        self.outbox.send(hermes.TOGGLE_ON, hermes.Toggle(sat.id, "dialogueSession"))

    def hotword_detected(self, sat: Satellite, session: Session) -> None:
        model = session.wake_word or "default"
        self.outbox.send(hermes.hotword_detected_topic(model), hermes.HotwordDetected(sat.id, model, session.id))

    def tell_muted(self, sat: Satellite, muted: bool) -> None:
        self.outbox.send(hermes.esp32_audio_topic(sat.id), hermes.Esp32Mute(muted))
        self.outbox.send(hermes.TOGGLE_OFF if muted else hermes.TOGGLE_ON, hermes.Toggle(sat.id, ""))
