"""The Hermes adapter: Rhasspy 2.5 and ESP32 satellites served as Hearth satellites.

It turns `hermes/...` messages into the same satellite operations Hearth's own protocol uses
(audio frames, wake, start/stop listening), answers `hermes/nlu/query` with the bridge's intents,
hands `tts/say`, `endSession` and `playFinished` to speech out, and publishes the Hermes side of
results (textCaptured, intentParsed, intent/<name>, intentNotRecognized, hotword detections and
toggles). It keeps the two protocols' satellites apart: a Hermes message naming a Hearth
satellite's id is refused, as is a site id outside the one id rule (it could not be muted), and
`hermes.session_control` decides whose startListening, stopListening and hotword detections
count. Every refusal is counted on `<prefix>/bridge/error` and told on `hermes/error/...`.
The payload shapes themselves live in `bridge.protocol.hermes`.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

from ..audio.wav import WavError, wav_to_pcm16k
from ..engines import EngineError, IntentResult, Transcript
from ..protocol import hermes
from ..protocol.hearth import SATELLITE_ID_RULE, is_satellite_id, parse_json_object
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, Session, SessionSource, session_id_from
from ..settings import HermesSettings
from ..stt.pool import DecoderPool
from ..tasks import spawn
from .outbox import Outbox
from .refusals import NoticeLimiter

#: Session ids remembered (the bridge's own hotword detections, sessions clients opened).
SESSION_MEMORY = 256
#: The counted error codes of Hermes refusals (docs/protocol.md, "Hermes").
SITE_CONFLICT = "hermes_site_conflict"  # a Hermes message for a Hearth satellite's id
SESSION_CONTROL = "hermes_session_control"  # startListening/stopListening/detected not allowed


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
    def seen(self, sat_id: str) -> None: ...


class HermesAdapter:
    """Dispatches `hermes/...` topics and publishes Hermes results."""

    def __init__(self, settings: HermesSettings, outbox: Outbox, host: HermesHost, pool: DecoderPool) -> None:
        self.settings = settings
        self.outbox = outbox
        self.host = host
        self._pool = pool
        self.frames = 0
        self.on_audio: Callable[[str, bytes], None] = lambda _sat_id, _pcm: None  #: the input level meter
        self.notices = NoticeLimiter()
        #: session ids of the bridge's own hotword detections (they come back to it)
        self._own_detections: OrderedDict[str, None] = OrderedDict()
        #: session ids that a client's startListening or hotword detection opened
        self._client_sessions: OrderedDict[str, None] = OrderedDict()

    # -- refusals ---------------------------------------------------------------------------------

    def refuse(self, code: str, message: str, site_id: str, session_id: str | None = None,
               topic: str | None = None, error_topic: str = hermes.ERROR_ASR) -> None:
        """Counted on `<prefix>/bridge/error`, and told to Hermes clients on `hermes/error/...`.

        The satellite field of the bridge error stays empty: the site may be a Hearth
        satellite's id, whose own error topic a Hermes client must not be able to write to."""
        self.host.report_error(code, message, None, session_id, topic)
        self.notify(code, message, site_id, session_id, error_topic)

    def notify(self, code: str, message: str, site_id: str, session_id: str | None = None,
               error_topic: str = hermes.ERROR_ASR) -> None:
        """Tells Hermes clients why a site was refused (at most so often: `bridge.service.refusals`)."""
        if self.notices.allow(code, site_id):
            self.outbox.send(error_topic, hermes.HermesError(site_id, session_id, message, code))

    # -- inbound ----------------------------------------------------------------------------------

    def site(self, site_id: str, create: bool, topic: str | None = None) -> Satellite | None:
        """The Hermes satellite for `site_id` (made on first sight when `create`); never a Hearth one.

        None when there is none, or when the site is refused (already said and counted): a
        Hearth satellite's id, an id outside the one id rule (it could not be muted), a site not
        in `hermes.sites`, or a full satellite table (the bridge tells that one)."""
        sat = self.host.satellites.get(site_id)
        if sat is not None:
            if sat.protocol is not SatelliteProtocol.HERMES:
                self.refuse(SITE_CONFLICT, f"Hermes siteId {site_id!r} is a Hearth satellite's id; refused",
                            site_id, None, topic)
                return None
            self.host.seen(site_id)
            return sat
        if not create:
            return None
        if not is_satellite_id(site_id):
            self.refuse("bad_satellite_id", f"Hermes siteId {site_id!r} is not served: a satellite id is "
                        f"{SATELLITE_ID_RULE}", site_id, None, topic)
            return None
        if self.settings.sites and site_id not in self.settings.sites:
            self.refuse("unknown_satellite", f"Hermes site {site_id!r} is not in hermes.sites", site_id, None, topic)
            return None
        sat = self.host.add_satellite(site_id, SatelliteProtocol.HERMES)
        if sat is not None:
            self.host.seen(site_id)
        return sat

    def hearth_id(self, site_id: str) -> bool:
        """Whether `site_id` is a Hearth satellite's (so no Hermes client may reach it)."""
        sat = self.host.satellites.get(site_id)
        return sat is not None and sat.protocol is not SatelliteProtocol.HERMES

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
            if played_site and self.site(played_site, create=False, topic=topic) is not None:
                self.host.respond(played_site, {"played": played.request_id})
            return
        data = parse_json_object(payload, topic)
        wakeword = hermes.wakeword_from_detected(topic)
        if wakeword is not None:
            self._detected(topic, wakeword, hermes.SiteRequest.from_json(data, topic))
        elif topic == hermes.START_LISTENING:
            self._start_listening(hermes.StartListening.from_json(data))
        elif topic == hermes.STOP_LISTENING:
            self._stop_listening(hermes.SiteRequest.from_json(data, topic))
        elif topic == hermes.NLU_QUERY:
            query = hermes.NluQuery.from_json(data)
            if self.hearth_id(query.site_id):
                self.refuse(SITE_CONFLICT, f"nlu/query for Hearth satellite {query.site_id!r}; refused",
                            query.site_id, query.session_id, topic, hermes.ERROR_NLU)
                return
            spawn(self._answer_nlu_query(query), name="nlu-query", report=self.host.report_error)
        elif topic in (hermes.TTS_SAY, hermes.END_SESSION):
            request = hermes.SiteRequest.from_json(data, topic)
            if self.hearth_id(request.site_id):
                self.refuse(SITE_CONFLICT, f"{topic} for Hearth satellite {request.site_id!r}; refused",
                            request.site_id, request.session_id, topic, hermes.ERROR_TTS)
                return
            self.host.respond(request.site_id, {"hermes": topic, **data})

    def _no_session_control(self, what: str, site_id: str, session_id: str | None, topic: str) -> bool:
        """`hermes.session_control: none`: refused (counted, told), before any site is looked up or made."""
        if self.settings.session_control != "none":
            return False
        self.refuse(SESSION_CONTROL, f"{what} from clients is not accepted (hermes.session_control: none)",
                    site_id, session_id, topic)
        return True

    def _detected(self, topic: str, wakeword: str, detected: hermes.SiteRequest) -> None:
        if detected.session_id is not None and detected.session_id in self._own_detections:
            return  # the bridge's own detection, come back to it
        if self._no_session_control("a hotword detection", detected.site_id, detected.session_id, topic):
            return
        sat = self.site(detected.site_id, create=True, topic=topic)
        if sat is None or sat.session is not None:
            return  # refused, or already listening
        if self.host.is_muted(detected.site_id):
            self.host.drop_muted(sat)
            return
        session_id = session_id_from(detected.session_id) or uuid.uuid4().hex
        self._remember(self._client_sessions, session_id)
        self.host.wake(sat, wakeword, SessionSource.HERMES, session_id)

    def _start_listening(self, start: hermes.StartListening) -> None:
        if self._no_session_control("startListening", start.site_id, start.session_id, hermes.START_LISTENING):
            return
        sat = self.site(start.site_id, create=True, topic=hermes.START_LISTENING)
        if sat is None or self.host.is_muted(start.site_id):
            return
        session_id = session_id_from(start.session_id) or uuid.uuid4().hex
        if sat.request_session(SessionSource.COMMAND, start.wakeword_id, session_id=session_id, lang=start.lang):
            self._remember(self._client_sessions, session_id)

    def _stop_listening(self, stop: hermes.SiteRequest) -> None:
        if self._no_session_control("stopListening", stop.site_id, stop.session_id, hermes.STOP_LISTENING):
            return
        sat = self.site(stop.site_id, create=False, topic=hermes.STOP_LISTENING)
        stopped = session_id_from(stop.session_id)  # the same rule as the session's own id
        if sat is None or sat.session is None or stopped not in (None, sat.session.id):
            return
        if self.settings.session_control == "own" and sat.session.id not in self._client_sessions:
            self.refuse(SESSION_CONTROL, "stopListening for a session no client opened (the bridge's own wake "
                        "word opened it; hermes.session_control: own)", sat.id, stop.session_id,
                        hermes.STOP_LISTENING)
            return
        sat.stop_listening()

    @staticmethod
    def _remember(ids: OrderedDict[str, None], session_id: str) -> None:
        ids[session_id] = None
        ids.move_to_end(session_id)
        while len(ids) > SESSION_MEMORY:
            ids.popitem(last=False)

    def _audio(self, topic: str, site: str, payload: bytes) -> None:
        sat = self.site(site, create=True, topic=topic)
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
            self.on_audio(site, pcm)
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
        self._remember(self._own_detections, session.id)
        self.outbox.send(hermes.hotword_detected_topic(model), hermes.HotwordDetected(sat.id, model, session.id))

    def tell_muted(self, sat: Satellite, muted: bool) -> None:
        self.outbox.send(hermes.esp32_audio_topic(sat.id), hermes.Esp32Mute(muted))
        self.outbox.send(hermes.TOGGLE_OFF if muted else hermes.TOGGLE_ON, hermes.Toggle(sat.id, ""))
