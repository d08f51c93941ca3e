"""The bridge: its satellites, and the host they and the other parts lean on.

`Bridge` owns the table of satellites and implements the small host protocols the parts are
written against (`SatelliteHost`, the dispatcher's, the Hermes adapter's): opening a speech
stream (the configured engine, the local fallback, or forwarding to Home Assistant through the
locality gate), asking the policy, and routing lifecycle events to result publishing, Hermes and
speech out. The table is bounded (`limits.max_satellites`), keeps Hermes sites and Hearth
satellites apart (a Hearth satellite takes its id over from a Hermes site), forgets satellites
that are gone (`bridge.service.table`) and tells a refused satellite why on its own topic. It
also runs the lifecycle (start, run, close) and the housekeeping (timed policy expiry, satellite
expiry, statistics, loop-lag probe). It holds no MQTT client and builds no engine: those come
from `bridge.service.link` and `bridge.service.build`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import PROTOCOL_VERSION, __version__
from ..engines import EngineError, Locality, SpeechToText, SttStream, TextToSpeech, Transcript
from ..errors import ErrorReporter
from ..metrics import BridgeMetrics
from ..privacy.audit import AuditLog
from ..privacy.gate import LocalityGate
from ..privacy.auth import CommandAuth
from ..privacy.policy import Policy
from ..privacy.retention import UtteranceRetention
from ..privacy.store import AuditStore
from ..protocol.hearth import WAKE_WORDS, ProtocolError, Topics, is_audio_topic
from ..protocol.messages import BridgeStatus, Command, JsonObject, SatelliteError
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, SatelliteSettings, Session, SessionSource, Timings
from ..settings import Settings
from ..speech_out import SpeechOut
from ..stt.fallback import FallbackSttStream
from ..stt.forward import ForwardStt
from ..stt.local import PocketsphinxStt
from ..stt.pool import DecoderPool
from ..tasks import spawn
from .arbitration import WakeRouter
from .control import PolicyState, PrivacyControl
from .dialogue import Dialogue
from .dispatch import Dispatcher
from .hermes import HermesAdapter
from .link import Connection, LastWill, Message, MqttLink
from .looplag import LoopLagProbe
from .outbox import Outbox
from .preferences import PreferenceStore, SatellitePreferenceControl
from .refusals import NoticeLimiter
from .results import Reporter, ResultPublisher
from .table import LastSeen
from .vocabulary import VocabularySwap

if TYPE_CHECKING:
    from aiohttp import web

    from ..wyoming_server import HearthWyomingServer

_LOGGER = logging.getLogger("bridge")

STATS_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class Engines:
    """What `build_bridge` made for the bridge: recognizers, the voice, and the locality gate."""

    pool: DecoderPool
    local_stt: PocketsphinxStt
    stt: SpeechToText  #: the configured engine (the local one, or a Wyoming server)
    tts: TextToSpeech | None
    gate: LocalityGate
    audit: AuditLog
    policy: PolicyState
    audit_store: AuditStore


class Bridge:
    """Satellites, their host, and the lifecycle of the whole service."""

    def __init__(self, settings: Settings, engines: Engines, *, ready: asyncio.Event | None = None,
                 wyoming_server: HearthWyomingServer | None = None) -> None:
        self.settings = settings
        self.bridge_id = settings.bridge_id
        self.topics = Topics(settings.mqtt.prefix)
        self.pool = engines.pool
        self.local_stt = engines.local_stt
        self.stt = engines.stt
        self.tts = engines.tts
        self.gate = engines.gate
        self.audit = engines.audit
        self.audit_store = engines.audit_store
        self.audit.restore_counters(self.audit_store.load())
        self.ready = ready or asyncio.Event()
        self.wyoming_server = wyoming_server
        self.errors = ErrorReporter()
        self._satellites: dict[str, Satellite] = {}
        self.last_seen = LastSeen()  #: its `clock` may be replaced (tests)
        self.notices = NoticeLimiter()
        self._closing: set[asyncio.Task[None]] = set()
        self.link = MqttLink(
            settings.mqtt, settings.mqtt.client_id or f"{self.bridge_id}-{uuid.uuid4().hex[:6]}",
            subscriptions=lambda: self.dispatcher.subscriptions(),
            will=LastWill(self.topics.bridge_status, Outbox.encode(self._status(False))),
            on_connect=self._on_connect, on_message=self._on_message, sheddable=is_audio_topic,
            on_disconnect=self._link_lost)
        self.outbox = Outbox(self.topics, self.link.publish)
        self.reporter = Reporter(self.outbox, self.errors, self._satellites)
        self.hermes = HermesAdapter(settings.hermes, self.outbox, self, self.pool)
        self.control = PrivacyControl(engines.policy, self.outbox, self.reporter, self.audit, self.hermes, self)
        self.results = ResultPublisher(self.outbox, self.reporter, self.audit, self.hermes, self.pool,
                                       settings.recognition, lambda: self.control.policy, self.is_muted)
        self.vocabulary = VocabularySwap(self.pool, self.outbox, self.reporter.report_error)
        self.preferences = SatellitePreferenceControl(
            PreferenceStore(settings.data_dir), self.outbox, self, self.reporter.report_error, settings.endpoint,
            settings.limits.max_satellites)
        self.preferences.configured_wake_word = lambda sat_id: settings.satellite(sat_id).wake_word
        self.results.settings_of = self.preferences.settings_json
        self.control.withdraw = self.results.withdraw_forwarded
        self.auth = CommandAuth(settings.data_dir, settings.pairing_key)
        self.auth.on_key_change = lambda: self.outbox.send(self.topics.bridge_status, self._status(True), retain=True)
        self.dispatcher = Dispatcher(settings, self, self.reporter, self.control, self.vocabulary, self.hermes,
                                     self.auth)
        self.speech_out = SpeechOut(self, self.tts)
        self.dialogue = Dialogue(self, self.speech_out, lambda: self.vocabulary.vocabulary)
        self.dialogue.act = self.results.publish_choice
        self.results.dialogue = self.dialogue
        self.results.confirm_of = self.preferences.confirm
        self.forward_stt = ForwardStt(self.outbox.send, self.topics.satellite, self.gate,
                                      self.link.broker_address_class)
        self.status_api_url: str | None = None
        self._status_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.utterances = 0
        self.loop_lag = LoopLagProbe()
        self.metrics = BridgeMetrics(self)  #: Prometheus metrics and the status page's figures
        self.results.metrics = self.metrics
        self.dispatcher.on_audio = self.hermes.on_audio = self.metrics.input_level
        self.wakes = WakeRouter(self._satellites, settings, self.is_muted, self._stand_down)

    # -- state the parts read ---------------------------------------------------------------------

    @property
    def satellites(self) -> Mapping[str, Satellite]:
        return self._satellites

    @property
    def connected(self) -> asyncio.Event:
        return self.link.connected

    @property
    def policy(self) -> Policy:
        """The privacy policy in force."""
        return self.control.policy

    @property
    def retention(self) -> UtteranceRetention:
        return self.control.retention

    @property
    def vocabulary_state(self) -> JsonObject:
        """The vocabulary state as published (empty before the first compile)."""
        state = self.vocabulary.state
        return state.to_json() if state is not None else {}

    @property
    def wyoming_port(self) -> int | None:
        return self.wyoming_server.port if self.wyoming_server is not None else None

    def is_muted(self, sat_id: str) -> bool:
        return self.control.is_muted(sat_id)

    def publish_transcripts(self) -> bool:
        return self.control.policy.publish_transcripts

    def retention_enabled(self) -> bool:
        return self.control.retention_enabled()

    def is_playing(self, sat_id: str) -> bool:
        return self.speech_out.is_playing(sat_id)

    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None:
        self.reporter.report_error(code, message, sat_id, session_id, topic)

    def drop_muted(self, sat: Satellite) -> None:
        self.control.drop_muted(sat)

    def hermes_site(self, site_id: str) -> Satellite | None:
        """The Hermes satellite for a site (made on first sight, e.g. by a `tts/say`)."""
        return self.hermes.site(site_id, create=True)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Compiles the vocabulary, starts the decoder workers and the listening servers."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.vocabulary.start(self.settings.vocabulary)
        self.ready.set()
        if self.wyoming_server is not None:
            await self.wyoming_server.start()
        api = self.settings.status_api
        if api.enabled:
            from ..status_api import start_status_api

            try:
                self._status_runner, self.status_api_url = await start_status_api(
                    self, api.host, api.port, ingress_source=api.ingress_source)
            except OSError as err:
                _LOGGER.error("Status API not started on %s:%s: %s", api.host, api.port, err)

    async def run(self) -> None:
        """Runs until cancelled: MQTT with reconnection, plus housekeeping."""
        if not self.ready.is_set():
            await self.start()
        self._tasks = [asyncio.create_task(self._housekeeping(), name="housekeeping"),
                       asyncio.create_task(self.loop_lag.run(), name="loop-lag")]
        try:
            await self.link.run()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stops everything the bridge started; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.wakes.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sat in list(self._satellites.values()):
            await sat.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.dialogue.close()
        if self.wyoming_server is not None:
            with contextlib.suppress(Exception):
                await self.wyoming_server.stop()
        if self._status_runner is not None:
            await self._status_runner.cleanup()
            self._status_runner = None
        if self.tts is not None:
            with contextlib.suppress(Exception):
                await self.tts.close()
        await self.pool.stop()
        try:
            self.audit_store.save(self.audit.counters_to_json())
        except OSError as err:
            self.reporter.report_error("audit_save_failed", f"could not save the audit counters: {err}")

    # -- MQTT -------------------------------------------------------------------------------------

    def engines_description(self) -> JsonObject:
        """Each engine's name and locality, as the bridge status publishes them."""
        return {
            "stt": dict(self.stt.describe()),
            "wake": {"name": "pymicro-wakeword", "locality": str(Locality.IN_PROCESS),
                     "default_model": self.settings.wake_model},
            "vad": {"name": "pymicro-vad", "locality": str(Locality.IN_PROCESS)},
            "intent": {"name": "hassil", "locality": str(Locality.IN_PROCESS)},
            "tts": dict(self.tts.describe()) if self.tts is not None else None,
        }

    def _status(self, online: bool) -> BridgeStatus:
        if not online:
            return BridgeStatus("offline", self.bridge_id)
        engines = self.engines_description()
        link = self.settings.status_api.link if self.status_api_url else None
        return BridgeStatus("online", self.bridge_id, PROTOCOL_VERSION, __version__, self.topics.prefix, engines,
                            link or self.status_api_url, self.wyoming_port, self.auth.key_id)

    async def _on_connect(self, connection: Connection) -> None:
        await connection.publish(self.topics.bridge_status, Outbox.encode(self._status(True)), retain=True, qos=1)
        self._republish_retained()

    def _link_lost(self) -> None:
        """The broker went away: every session listening through it lost its audio with it. Each
        is closed now (`broker_disconnected`), not by its audio timeout seconds after the
        satellite reconnected and began its next command."""
        for sat in self._satellites.values():
            sat.pending_start = None
            if sat.session is not None:
                spawn(sat.abort("broker_disconnected", "the connection to the MQTT broker was lost mid-utterance"),
                      name="satellite-abort", report=self.reporter.report_error)

    def _on_message(self, message: Message) -> None:
        self.dispatcher.dispatch(message.topic, message.payload)

    def dispatch(self, topic: str, payload: bytes) -> None:
        """One message as if it came from the broker (the dispatcher's entry point)."""
        self.dispatcher.dispatch(topic, payload)

    def _republish_retained(self) -> None:
        """After (re)connecting: the broker may have lost what we retained."""
        self.control.republish()
        self.vocabulary.republish()
        self.outbox.send(self.topics.audit, self.audit.to_json(), retain=True)
        for sat in self._satellites.values():
            self.state_changed(sat)

    # -- the satellite table ----------------------------------------------------------------------

    def add_satellite(self, sat_id: str, protocol: SatelliteProtocol) -> Satellite | None:
        """A new satellite in the table; None (and the satellite told why) when the table is full."""
        limit = self.settings.limits.max_satellites
        if len(self._satellites) >= limit:
            self.expire_satellites()  # make room from what is gone before refusing anyone
        if len(self._satellites) >= limit:
            self._make_room()
        if len(self._satellites) >= limit:
            message = f"satellite limit {limit} reached (limits.max_satellites); {sat_id!r} is not served"
            # No satellite field: a flood of made-up ids must not make one log line or one
            # published error per id (the refused satellite is told on its own topic, bounded).
            self.reporter.report_error("too_many_satellites", message)
            self.tell_refused(sat_id, protocol, "too_many_satellites", message)
            return None
        configured = self.settings.satellite(sat_id)
        sat = Satellite(self, sat_id, protocol, SatelliteSettings(
            wake_word=self.preferences.wake_word(sat_id) or configured.wake_word or self.settings.wake_model,
            play_rate=configured.play_rate, area=configured.area, queue_frames=self.settings.limits.queue_frames,
            endpoint=self.preferences.endpoint_settings(sat_id)))
        sat.on_wake = self.wakes.heard
        self._satellites[sat_id] = sat
        self.last_seen.seen(sat_id)
        _LOGGER.info("Satellite %s (%s) joined", sat_id, protocol)
        self.outbox.stats_dirty = True
        return sat

    def tell_refused(self, sat_id: str, protocol: SatelliteProtocol, code: str, message: str) -> None:
        """A satellite the bridge will not serve is told why on its own topic (bounded)."""
        if protocol is SatelliteProtocol.HERMES:
            self.hermes.notify(code, message, sat_id)
        elif self.notices.allow(code, sat_id):
            self.outbox.send(self.topics.satellite(sat_id, "error"), SatelliteError(None, sat_id, code, message, fatal=True))

    def take_over(self, sat_id: str) -> Satellite | None:
        """A Hearth satellite announcing itself under an id a Hermes site holds: the site gives way."""
        held = self._satellites.get(sat_id)
        if held is not None and held.protocol is SatelliteProtocol.HERMES:
            message = f"Hermes site {sat_id!r} removed: a Hearth satellite announced itself under its id"
            self._forget(sat_id, "hermes_site_replaced", message)
            self.reporter.report_error("hermes_site_replaced", message, sat_id)
            self.tell_refused(sat_id, SatelliteProtocol.HERMES, "hermes_site_replaced", message)
        return self.add_satellite(sat_id, SatelliteProtocol.HEARTH)

    def default_wake_word(self, sat_id: str) -> str:
        """The wake word of a satellite Home Assistant chose none for: configured, announced, default."""
        sat = self._satellites.get(sat_id)
        announced = sat.info.get("wake_word") if sat is not None else None
        return (self.settings.satellite(sat_id).wake_word
                or (announced if isinstance(announced, str) and announced in WAKE_WORDS else None)
                or self.settings.wake_model)

    def seen(self, sat_id: str) -> None:
        """The satellite was heard from (its expiry starts again)."""
        if sat_id in self._satellites:
            self.last_seen.seen(sat_id)

    def expire_satellites(self) -> list[str]:
        """Forgets the satellites that are gone (`bridge.service.table`); returns their ids."""
        gone = self.last_seen.gone(list(self._satellites.values()), lambda sat: self.speech_out.is_playing(sat.id))
        for sat_id in gone:
            _LOGGER.info("Satellite %s expired (not heard from)", sat_id)
            self._forget(sat_id, "satellite_expired", "satellite expired")
        return gone

    def _make_room(self) -> None:
        """A full table, nothing gone: the longest-silent satellite without a session gives way."""
        sat_id = self.last_seen.longest_silent(list(self._satellites.values()),
                                                lambda sat: self.speech_out.is_playing(sat.id))
        if sat_id is not None:
            _LOGGER.info("Satellite %s forgotten to make room (the longest silent)", sat_id)
            self._forget(sat_id, "satellite_expired", "satellite forgotten to make room for another")

    def _forget(self, sat_id: str, code: str, message: str) -> None:
        """Out of the table now (synchronously), its retained state cleared, closed in the background."""
        self.dialogue.interrupt(sat_id)
        sat = self._satellites.pop(sat_id, None)
        self.last_seen.forget(sat_id)
        self.metrics.forget(sat_id)
        if sat is None:
            return
        self.speech_out.stop_playback(sat_id)
        self.outbox.send(self.topics.satellite(sat_id, "state"), b"", retain=True)
        self.outbox.stats_dirty = True
        task = asyncio.create_task(self._close_satellite(sat, code, message), name=f"close-{sat_id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_satellite(sat: Satellite, code: str, message: str) -> None:
        await sat.abort(code, message)
        await sat.close()

    async def remove_satellite(self, sat_id: str) -> None:
        """Its retained status was cleared: out of the table, and closed before this returns."""
        self._forget(sat_id, "satellite_removed", "satellite removed")
        await asyncio.gather(*list(self._closing), return_exceptions=True)

    def wake(self, sat: Satellite, wake_word: str | None, source: SessionSource, session_id: str | None = None,
             stream_id: int | None = None, wake_probability: float | None = None,
             speech_db: float | None = None) -> None:
        """A wake, from the dispatcher or the Hermes adapter: `bridge.service.arbitration`."""
        self.wakes.wake(sat, wake_word, source, session_id, stream_id, wake_probability, speech_db)

    def _stand_down(self, sat: Satellite, session_id: str | None) -> None:
        self.outbox.send(self.topics.satellite(sat.id, "command"), Command("stand_down", session_id))

    def respond(self, sat_id: str, request: Mapping[str, object]) -> None:
        """Home Assistant's answer, an announcement, stop/played, Hermes say/endSession: speech out."""
        if request.get("stop"):
            self.dialogue.interrupt(sat_id)  # a stop during a question ends it
        spawn(self.speech_out.handle(sat_id, dict(request)), name="speech-out", report=self.reporter.report_error)

    def ask(self, sat_id: str, request: Mapping[str, object]) -> None:
        """Home Assistant's question (`ask`): said and its answer heard by the dialogue."""
        sat = self._satellites.get(sat_id)
        if sat is None:
            raise ProtocolError("unknown_satellite", f"ask: no satellite {sat_id!r}")
        self.dialogue.ask_for(sat, request)

    def play_wav(self, sat_id: str, wav: bytes) -> None:
        spawn(self.speech_out.play_wav(sat_id, wav), name="play-wav", report=self.reporter.report_error)

    # -- SatelliteHost ----------------------------------------------------------------------------

    async def open_stream(self, sat: Satellite, session_id: str, wake_word: str | None) -> SttStream:
        """The configured engine's stream; the local engine when it is refused or fails.

        Satellites in `assist` pipeline mode forward their audio to Home Assistant instead, through
        the locality gate (refused under local-only when the broker is not on the home network).
        """
        answer = await self.dialogue.open_stream(sat, session_id)
        if answer is not None:
            return answer  # the answer to a question: its own small grammar
        if self.dispatcher.pipeline_modes.get(sat.id) == "assist":
            return await self.forward_stt.open(session_id, sat.id, wake_word)
        engine = self.stt
        if engine is self.local_stt:
            return await engine.open(session_id, area=sat.area)

        def fell_back(err: EngineError) -> None:
            self.reporter.report_error(err.code, f"{engine.name}: {err.message}; the local recognizer answered instead",
                                       sat.id, session_id)

        try:
            primary = await engine.open(session_id, area=sat.area)
        except EngineError as err:
            fell_back(err)
            return await self.local_stt.open(session_id, area=sat.area)
        return FallbackSttStream(primary, self.local_stt, session_id, fell_back)

    def state_changed(self, sat: Satellite) -> None:
        if self._satellites.get(sat.id) is sat:  # not one removed (closing), whose id may be reused
            self.results.satellite_state(sat)
            self.metrics.state_changed()

    def session_failed(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None:
        self.reporter.session_failed(sat, session_id, code, message)
        self.dialogue.session_failed(sat, session_id, code)

    def wake_started(self, sat: Satellite, session: Session) -> None:
        self.dialogue.interrupt(sat.id, session.id)  # a wake during a question (barge-in) ends it
        if self.speech_out.is_playing(sat.id):
            self.speech_out.stop_playback(sat.id)  # barge-in
        self.results.wake(sat, session)
        if session.source is SessionSource.COMMAND and sat.protocol is SatelliteProtocol.HEARTH and sat.on_device_wake:
            # The bridge opened the session (e.g. to hear the answer to a question): the satellite
            # only streams after its own wake word, so ask it to stream now.
            self.outbox.send(self.topics.satellite(sat.id, "command"), Command("start_streaming", session.id))
        if sat.protocol is SatelliteProtocol.HERMES and session.source is SessionSource.BRIDGE:
            self.hermes.hotword_detected(sat, session)

    def session_started(self, sat: Satellite, session: Session) -> None:
        self.utterances += 1
        self.speech_out.remember_session(session.id, sat.id)
        if sat.protocol is SatelliteProtocol.HERMES:
            self.hermes.session_started(sat)

    def listening_ended(self, sat: Satellite, session: Session) -> None:
        """The bridge has heard enough: a satellite that streams per session may stop now."""
        self.dialogue.listening_ended(sat, session)
        if sat.protocol is SatelliteProtocol.HEARTH and sat.on_device_wake:
            self.outbox.send(self.topics.satellite(sat.id, "command"), Command("stop_streaming", session.id))

    def session_ended(self, sat: Satellite, session: Session, ok: bool) -> None:
        if sat.protocol is SatelliteProtocol.HERMES and not self.is_muted(sat.id):
            self.hermes.session_ended(sat)
        self.outbox.stats_dirty = True

    def keep_audio(self, sat_id: str, session_id: str, pcm: bytes) -> None:
        self.control.retention.keep(sat_id, session_id, pcm, time.time())

    async def deliver(self, sat: Satellite, session: Session, transcript: Transcript, timings: Timings) -> None:
        if self.dialogue.deliver(sat, session, transcript):
            self.results.audit_only(sat, session, transcript)  # an answer to a question
            return
        await self.results.deliver(sat, session, transcript, timings)

    # -- housekeeping -----------------------------------------------------------------------------

    def stats(self) -> JsonObject:
        return {
            "frames": self.dispatcher.frames + self.hermes.frames, "messages": self.dispatcher.messages,
            "dropped_muted": self.control.dropped_muted, "withheld_muted": self.results.withheld_muted,
            "policy_saved": self.control.state.saved,
            "dropped_outgoing": self.link.dropped_outgoing,
            "refused_commands": self.auth.stats(),
            "shed_inbound": {"audio": self.link.backlog.shed_audio, "other": self.link.backlog.shed_other},
            "reconnects": self.link.reconnects, "utterances": self.utterances,
            "arbitration": self.wakes.stats(), "questions": self.dialogue.stats(),
            "errors": dict(self.errors.counts), "decoder_busy": self.pool.busy,
            "decoder_restarts": self.pool.restarts, "decoder_utterances": self.pool.utterances_started,
            **self.loop_lag.summary(),
            "satellites": {sid: {**s.counters, "state": str(s.state), "queue": len(s.queue), "online": s.online,
                                 "protocol": str(s.protocol)} for sid, s in self._satellites.items()},
        }

    async def _housekeeping(self) -> None:
        saved_counters: dict[str, int] = {}
        last_stats = 0.0
        while True:
            await asyncio.sleep(1.0)
            self.control.expire(time.time())
            self.expire_satellites()
            self.errors.flush()  # error summaries due
            if self.outbox.stats_dirty and time.monotonic() - last_stats >= STATS_INTERVAL:
                self.outbox.stats_dirty = False
                last_stats = time.monotonic()
                self.outbox.send(self.topics.bridge_stats, self.stats(), retain=True)
                self.outbox.send(self.topics.audit, self.audit.to_json(), retain=True)
                counters = self.audit.counters_to_json()
                if counters != saved_counters:
                    try:
                        self.audit_store.save(counters)
                        saved_counters = dict(counters)
                    except OSError as err:
                        self.reporter.report_error("audit_save_failed", f"could not save the audit counters: {err}")
