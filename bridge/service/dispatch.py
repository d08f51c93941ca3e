"""The dispatcher: every message from the broker, routed to what handles it.

Synchronous and never awaiting, so the incoming queue never backs up: it checks the payload's
size and topic, parses Hearth's satellite topics (audio, status, event, Home Assistant's
response/announce, the Assist pipeline leaves), checks the privacy policy before any audio is
queued, and hands policy, vocabulary and purge commands and Hermes topics to their owners. A
Hearth satellite announcing itself under an id a Hermes site holds takes the id over (a Hermes
client can never keep a Hearth satellite out). A broken message gives a coded error and the
service goes on serving everyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NoReturn, Protocol

from ..privacy.auth import AuthError, CommandAuth, split
from ..protocol.hearth import (
    BRIDGE_OUTBOUND,
    MAX_PIPELINE_PLAY,
    ProtocolError,
    decode_frame,
    loads_json,
    parse_json_object,
)
from ..protocol.messages import PolicyResult, SatelliteEvent, SatelliteSettingsResult, SatelliteStatus
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, SessionSource
from ..settings import Settings
from ..tasks import spawn
from .control import PrivacyControl
from .hermes import HermesAdapter
from .preferences import SatellitePreferenceControl
from .results import Reporter
from .vocabulary import VocabularySwap

_LOGGER = logging.getLogger("bridge")


class DispatchHost(Protocol):
    """What the dispatcher needs from the bridge: its satellites and what to do with requests."""

    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    def add_satellite(self, sat_id: str, protocol: SatelliteProtocol) -> Satellite | None: ...
    def take_over(self, sat_id: str) -> Satellite | None: ...
    def seen(self, sat_id: str) -> None: ...
    def tell_refused(self, sat_id: str, protocol: SatelliteProtocol, code: str, message: str) -> None: ...
    async def remove_satellite(self, sat_id: str) -> None: ...
    def wake(self, sat: Satellite, wake_word: str | None, source: SessionSource, session_id: str | None = None,
             stream_id: int | None = None, wake_probability: float | None = None,
             speech_db: float | None = None) -> None: ...
    def respond(self, sat_id: str, request: Mapping[str, object]) -> None: ...
    def ask(self, sat_id: str, request: Mapping[str, object]) -> None: ...
    def play_wav(self, sat_id: str, wav: bytes) -> None: ...
    def state_changed(self, sat: Satellite) -> None: ...
    def default_wake_word(self, sat_id: str) -> str: ...
    @property
    def preferences(self) -> SatellitePreferenceControl: ...


class Dispatcher:
    """Routes one message; counts messages and audio frames."""

    def __init__(self, settings: Settings, host: DispatchHost, reporter: Reporter, control: PrivacyControl,
                 vocabulary: VocabularySwap, hermes: HermesAdapter, auth: CommandAuth) -> None:
        self.settings = settings
        self.auth = auth  #: policy, purge and settings commands must be signed (privacy/auth.py)
        self.topics = reporter.topics
        self.host = host
        self.reporter = reporter
        self.control = control
        self.vocabulary = vocabulary
        self.hermes = hermes
        self.messages = 0
        self.frames = 0
        self.on_audio: Callable[[str, bytes], None] = lambda _sat_id, _pcm: None  #: the input level meter
        #: Assist pipeline streaming: satellites whose audio Home Assistant recognizes (docs/protocol.md).
        self.pipeline_modes: dict[str, str] = {}

    def subscriptions(self) -> list[str]:
        t = self.topics
        subs = [*t.satellite_wildcards, t.vocabulary_set, t.policy_set, t.history_purge]
        if self.settings.hermes.enabled:
            from ..protocol import hermes

            subs += list(hermes.SUBSCRIPTIONS)
        return subs

    def dispatch(self, topic: str, payload: bytes) -> None:
        self.messages += 1
        limits = self.settings.limits
        limit = limits.max_vocabulary_payload if topic == self.topics.vocabulary_set else limits.max_payload
        if topic.endswith("/pipeline/play"):
            limit = MAX_PIPELINE_PLAY
        if len(payload) > limit:
            self.reporter.report_error("oversized", f"{len(payload)}-byte message exceeds {limit}", None, None, topic)
            if topic == self.topics.vocabulary_set:
                self.vocabulary.rejected(f"vocabulary of {len(payload)} bytes exceeds the {limit}-byte limit")
            return
        parsed: tuple[str, str] | None = None
        try:
            parsed = self.topics.parse_satellite_topic(topic)
            if parsed is not None:
                self._satellite_topic(parsed[0], parsed[1], payload)
            elif topic == self.topics.policy_set:
                if (body := self._authenticated(topic, payload, None)) is not None:
                    self.control.on_command(body)
            elif topic == self.topics.vocabulary_set:
                spawn(self.vocabulary.apply_payload(payload), name="vocabulary-apply",
                      report=self.reporter.report_error)
            elif topic == self.topics.history_purge:
                if (body := self._authenticated(topic, payload, None)) is not None:
                    self.control.on_purge(body)
            elif topic.startswith("hermes/"):
                self.hermes.dispatch(topic, payload)
        except ProtocolError as err:
            self.reporter.report_error(err.code, err.message, parsed[0] if parsed else None, None, topic)
        except Exception as err:  # noqa: BLE001 - a bug on one message must not stop the service
            _LOGGER.exception("Unexpected error handling a message on %s", topic)
            self.reporter.report_error("internal_error", f"{type(err).__name__}: {err}",
                                       parsed[0] if parsed else None, None, topic)

    def _satellite_topic(self, sat_id: str, leaf: str, payload: bytes) -> None:
        if leaf in BRIDGE_OUTBOUND:
            return
        if leaf == "audio":
            self._audio(sat_id, payload)
        elif leaf == "status":
            self._status(sat_id, payload)
        elif leaf == "event":
            self._event(sat_id, SatelliteEvent.from_json(parse_json_object(payload, "satellite event")))
        elif leaf == "response":
            self.host.respond(sat_id, parse_json_object(payload, "response"))
        elif leaf == "ask":
            self.host.ask(sat_id, parse_json_object(payload, "ask"))
        elif leaf == "announce":
            self.host.respond(sat_id, {**parse_json_object(payload, "announce"), "announce": True})
        elif leaf == "pipeline/set":
            self._pipeline_set(sat_id, payload)
        elif leaf == "pipeline/play":
            self.host.play_wav(sat_id, payload)
        elif leaf == "settings/set":
            topic = self.topics.satellite(sat_id, leaf)
            if (body := self._authenticated(topic, payload, sat_id)) is not None:
                self.host.preferences.on_command(sat_id, body, self.host.default_wake_word)
        else:
            raise ProtocolError("bad_topic", f"unknown satellite topic leaf {leaf!r}")

    def _authenticated(self, topic: str, payload: bytes, sat_id: str | None) -> bytes | None:
        """The command's body when it is signed with the pairing key; else None: not applied,
        counted (stats, audit, `bridge/error`), and answered with code `unauthenticated`."""
        try:
            return self.auth.verify(topic, payload)
        except AuthError as err:
            message = f"{err.reason}: {err}"
        request_id = None
        try:  # only to address the answer; nothing else in an unproven command is used
            data = loads_json(split(payload)[1], "refused command")
            if isinstance(data, dict) and isinstance(data.get("request_id"), (str, int)):
                request_id = data["request_id"]
        except ProtocolError:
            pass
        audit = self.control.audit
        audit.note_refused_command()
        self.reporter.outbox.send(self.topics.audit, audit.to_json(), retain=True)
        self.reporter.outbox.stats_dirty = True
        self.reporter.report_error(AuthError.code, message, sat_id, None, topic)
        if sat_id is None:
            self.reporter.outbox.send(self.topics.policy_result, PolicyResult(
                request_id, False, message, self.control.policy.to_json(), code=AuthError.code))
        else:
            self.reporter.outbox.send(self.topics.satellite(sat_id, "settings/result"), SatelliteSettingsResult(
                request_id, False, AuthError.code, message, self.host.preferences.settings_json(sat_id)))
        return None

    def _audio(self, sat_id: str, payload: bytes) -> None:
        sat = self.host.satellites.get(sat_id)
        if sat is None or sat.protocol is not SatelliteProtocol.HEARTH or not sat.online:
            self._unknown(sat_id, f"audio from satellite {sat_id!r}, which has not announced itself online")
        self.host.seen(sat_id)
        frame = decode_frame(payload)
        self.frames += 1
        if self.control.is_muted(sat_id):
            self.control.drop_muted(sat)
            return
        if not sat.admit(len(frame.pcm)):
            return
        self.on_audio(sat_id, frame.pcm)
        sat.accept_frame(frame.stream_id, frame.seq, frame.pcm, frame.last)

    def _unknown(self, sat_id: str, message: str) -> NoReturn:
        """A Hearth satellite the table does not hold (never announced, or forgotten as gone) is
        told on its own topic (bounded), so that it announces itself again; then the error."""
        if sat_id not in self.host.satellites:  # a Hermes site's id is not a Hearth satellite's topic
            self.host.tell_refused(sat_id, SatelliteProtocol.HEARTH, "unknown_satellite", message)
        raise ProtocolError("unknown_satellite", message)

    def _pipeline_set(self, sat_id: str, payload: bytes) -> None:
        """Home Assistant's choice for one satellite: `hearth` (default) or `assist`."""
        if not payload:  # retained choice cleared
            self.pipeline_modes.pop(sat_id, None)
            return
        mode = parse_json_object(payload, "pipeline/set").get("mode")
        if mode not in ("hearth", "assist"):
            raise ProtocolError("bad_pipeline_mode", f"pipeline mode must be hearth or assist, got {mode!r}")
        if mode == "hearth":
            self.pipeline_modes.pop(sat_id, None)
        elif sat_id in self.pipeline_modes or len(self.pipeline_modes) < self.settings.limits.max_satellites:
            self.pipeline_modes[sat_id] = mode
        else:
            raise ProtocolError("too_many_satellites", "pipeline modes for more satellites than the limit")

    def _status(self, sat_id: str, payload: bytes) -> None:
        sat = self.host.satellites.get(sat_id)
        if not payload:  # retained status cleared: the satellite was removed
            if sat is not None and sat.protocol is SatelliteProtocol.HEARTH:
                spawn(self.host.remove_satellite(sat_id), name="satellite-remove", report=self.reporter.report_error)
            return
        status = SatelliteStatus.from_json(parse_json_object(payload, "satellite status"))
        if sat is None or sat.protocol is not SatelliteProtocol.HEARTH:
            if not status.online:
                return
            # A Hermes site under this id (a Hermes client spoke first) gives way: the Hearth
            # satellite's own topics are its proof of identity, a Hermes siteId is only a name.
            sat = self.host.add_satellite(sat_id, SatelliteProtocol.HEARTH) if sat is None else self.host.take_over(sat_id)
            if sat is None:
                return
        sat.info = dict(status.info)
        sat.on_device_wake = status.on_device_wake
        sat.barge_in = status.barge_in
        if (status.wake_word is not None and self.settings.satellite(sat_id).wake_word is None
                and self.host.preferences.wake_word(sat_id) is None):
            sat.wake_word = status.wake_word
        if status.play_rate is not None:
            sat.play_rate = status.play_rate
        was_online = sat.online
        sat.online = status.online
        if was_online or sat.online:  # its offline time counts from when it went offline
            self.host.seen(sat_id)
        if was_online and not sat.online and sat.session is not None:
            spawn(sat.abort("satellite_offline", "satellite went offline mid-utterance"), name="satellite-abort",
                  report=self.reporter.report_error)
        self.host.state_changed(sat)
        if sat.online and self.control.is_muted(sat_id):
            self.control.tell_muted(sat, True)

    def _event(self, sat_id: str, event: SatelliteEvent) -> None:
        sat = self.host.satellites.get(sat_id)
        if sat is None or sat.protocol is not SatelliteProtocol.HEARTH:
            self._unknown(sat_id, f"event from satellite {sat_id!r}, which has not announced itself")
        self.host.seen(sat_id)
        if event.type in ("wake", "button"):
            if self.control.is_muted(sat_id):
                self.control.drop_muted(sat)
                return
            self.host.wake(sat, event.wake_word, SessionSource.SATELLITE if event.type == "wake" else SessionSource.BUTTON,
                           stream_id=event.stream_id, wake_probability=event.wake_probability,
                           speech_db=event.speech_db)
        elif event.type == "stop":
            spawn(sat.abort("stopped", "stopped by the satellite"), name="satellite-abort",
                  report=self.reporter.report_error)
            self.host.respond(sat_id, {"stop": True})
        elif event.type == "played":
            self.host.respond(sat_id, {"played": event.play_id})
