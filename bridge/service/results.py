"""Result publishing: what the bridge says about satellites and utterances.

The one place that turns a finished utterance into the wire payloads (`transcript`, `intent`,
the Hermes equivalents through :class:`HermesAdapter`), a content-free audit entry and a log line
without the words; and the one place that publishes errors (rate-limited per cause), retained
satellite states and wake announcements (every error counted; publishing and logging bounded per
code by `bridge.errors.ErrorReporter`). It asks the verdict (`bridge.recognition.verdict`)
before anyone can act on the text: a command it refuses is published as rejected; one it asks
about goes to the dialogue (`bridge.service.dialogue`), which publishes the meaning chosen once it
is confirmed (:meth:`ResultPublisher.publish_choice`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from ..engines import EngineError, IntentResult, Locality, Transcript
from ..errors import ErrorReporter
from ..metrics import BridgeMetrics
from ..privacy.audit import AuditEntry, AuditLog, EngineUse
from ..privacy.policy import Policy
from ..protocol import hermes
from ..protocol.hearth import Topics
from ..protocol.messages import (
    BridgeError,
    IntentMessage,
    JsonObject,
    SatelliteError,
    SatelliteState,
    TranscriptMessage,
    WakeMessage,
)
from ..recognition.verdict import Hearing, Outcome, decide
from ..satellite import Protocol, Satellite, Session, Timings, session_id_from
from ..settings import RecognitionSettings
from ..stt.pool import DecoderPool
from .dialogue import Choice, Dialogue, Question, narrow_to_area
from .hermes import HermesAdapter
from .outbox import Outbox

_LOGGER = logging.getLogger("bridge")

#: how long after its audio ended a forwarded command may still be running in Home Assistant's
#: pipeline, so that a mute withdraws it (see ResultPublisher.withdraw_forwarded)
FORWARDED_RUN_SECONDS = 60.0

_LISTENING_ENGINES = (EngineUse("wake", "pymicro-wakeword", Locality.IN_PROCESS),
                      EngineUse("vad", "pymicro-vad", Locality.IN_PROCESS))


class Reporter:
    """Publishes errors: non-fatal ones rate-limited per cause, fatal ones ending a session."""

    def __init__(self, outbox: Outbox, errors: ErrorReporter, satellites: Mapping[str, Satellite]) -> None:
        self.outbox = outbox
        self.topics: Topics = outbox.topics
        self.errors = errors
        self._satellites = satellites

    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None:
        """A non-fatal error: counted always; logged and published within bounds per code (the
        first logged, then summaries; events rate-limited per code and per satellite)."""
        self.outbox.stats_dirty = True
        if not self.errors.report(code, message, sat_id):
            return
        self.outbox.send(self.topics.bridge_error, BridgeError(code, message, topic, sat_id, session_id))
        sat = self._satellites.get(sat_id) if sat_id else None
        if sat is not None and sat.protocol is Protocol.HEARTH:
            self.outbox.send(self.topics.satellite(sat.id, "error"),
                             SatelliteError(session_id, sat.id, code, message, fatal=False))
        # Hermes has no non-fatal errors: hermes/error/asr ends a dialogue session, so it is only
        # sent when the session really ended (session_failed); bad Hermes frames of no session
        # still get one so a tool can see why.
        elif sat is not None and session_id is None and code not in ("muted", "rate_limited"):
            self.outbox.send(hermes.ERROR_ASR, hermes.HermesError(sat.id, None, message, code))

    def session_failed(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None:
        """A fatal error: the session named is over."""
        self.errors.report(code, message, sat.id)
        self.outbox.send(self.topics.satellite(sat.id, "error"),
                         SatelliteError(session_id, sat.id, code, message, fatal=True))
        if sat.protocol is Protocol.HERMES:
            self.outbox.send(hermes.ERROR_ASR, hermes.HermesError(sat.id, session_id, message, code))


class ResultPublisher:
    """Publishes results, states and wake announcements; records the audit."""

    def __init__(self, outbox: Outbox, reporter: Reporter, audit: AuditLog, hermes_adapter: HermesAdapter,
                 pool: DecoderPool, recognition: RecognitionSettings, policy: Callable[[], Policy],
                 is_muted: Callable[[str], bool]) -> None:
        self.outbox = outbox
        self.topics: Topics = outbox.topics
        self.reporter = reporter
        self.audit = audit
        self.hermes = hermes_adapter
        self.pool = pool
        self.recognition = recognition
        self._policy = policy
        self._is_muted = is_muted
        #: a satellite's settings in force, for its retained state (set by the bridge)
        self.settings_of: Callable[[str], JsonObject] = lambda _sat_id: {}
        self.metrics: BridgeMetrics | None = None
        #: results discarded because the microphone was muted while they were being decoded
        self.withheld_muted = 0
        #: each satellite's last forwarded session and when its audio ended (Home Assistant may still run it)
        self._forwarded: dict[str, tuple[str, float]] = {}
        #: asks back when the verdict asks (set by the bridge); None: what it asks about is refused
        self.dialogue: Dialogue | None = None
        #: a satellite's `confirm` setting: unsure | sensitive | never (set by the bridge)
        self.confirm_of: Callable[[str], str] = lambda _sat_id: "unsure"

    def satellite_state(self, sat: Satellite) -> None:
        self.outbox.send(self.topics.satellite(sat.id, "state"), SatelliteState(
            state=str(sat.state), session_id=sat.session.id if sat.session else None,
            muted=self._is_muted(sat.id), protocol=str(sat.protocol), online=sat.online,
            last=dict(sat.last_result), settings=self.settings_of(sat.id)), retain=True)

    def wake(self, sat: Satellite, session: Session) -> None:
        self.outbox.send(self.topics.satellite(sat.id, "wake"),
                         WakeMessage(session.id, sat.id, session.wake_word, str(session.source)))

    # -- utterances -------------------------------------------------------------------------------

    async def deliver(self, sat: Satellite, session: Session, transcript: Transcript, timings: Timings) -> None:
        """Publishes one finished utterance (or, for a forwarded one, only audits it)."""
        if transcript.forwarded:
            self._forwarded[sat.id] = (session.id, time.monotonic())
            if self._is_muted(sat.id):  # muted while the session closed
                self.withdraw_forwarded(sat)
            self._audit(sat, session, transcript)
            _LOGGER.info("%s: %.1f s of audio forwarded to Home Assistant's Assist pipeline", sat.id,
                         transcript.audio_seconds)
            return
        self._forwarded.pop(sat.id, None)  # a newer command, recognized here
        private = not self._policy().publish_transcripts
        intent, intent_used, waited_ms, intent_ms = await self._intent(sat, session, transcript)
        if self._withheld_for_mute(sat, session, transcript, intent_used):
            return
        question: Question | None = None
        verdict = transcript.verdict or decide(Hearing(
            transcript.text, transcript.confidence,
            None if intent is None else {**intent.to_json(), "unsure": intent.unsure},
            "rejected" if transcript.rejected else None), self.recognition.verdict())
        if intent is not None and verdict.reason == "ambiguous_name":
            # a name that fits several entities: those in the satellite's area, if some are there
            vocab = self.dialogue.vocabulary() if self.dialogue is not None else None
            narrowed = narrow_to_area(intent, sat.area, vocab)
            if narrowed != intent:
                intent = narrowed
                verdict = decide(Hearing(transcript.text, transcript.confidence,
                                         {**intent.to_json(), "unsure": intent.unsure}), self.recognition.verdict())
        transcript = dataclasses.replace(transcript, verdict=verdict)
        if intent is not None:
            outcome: Outcome = verdict.outcome if verdict.outcome is not Outcome.ASK else Outcome.REFUSE
            if self.dialogue is not None:  # asked, or what the satellite's `confirm` setting makes of it
                outcome, question = self.dialogue.consider(sat, verdict, transcript, session, private,
                                                           self.confirm_of(sat.id))
            if outcome is Outcome.REFUSE:
                self.reporter.report_error(verdict.reason, f"{intent.name} {verdict.why}; not acted on",
                                           sat.id, session.id)
            if outcome is not Outcome.ACT:  # refused, or asked about: nothing acts on it now
                transcript = dataclasses.replace(transcript, rejected=True)
                intent = None
        timings = dataclasses.replace(timings, intent_ms=round(intent_ms, 1))
        latency = round(timings.end_of_speech_to_text_ms + waited_ms, 1)
        self._publish(sat, session, transcript, intent, dict(timings.to_json()), latency, private,
                      hermes_too=question is None)
        if question is not None:
            assert self.dialogue is not None
            question.timings = dict(timings.to_json())
            self.dialogue.ask(sat, question)
        self._audit(sat, session, transcript, intent_used=intent_used)
        if self.metrics is not None:
            self.metrics.observe_result(
                sat.id, session.id, text_ms=timings.end_of_speech_to_text_ms,
                intent_ms=latency if intent is not None else None, cpu_seconds=transcript.cpu_seconds,
                audio_seconds=session.audio_bytes / 32000, rejected=transcript.rejected,
                text="" if transcript.rejected else transcript.text)
        # Never the words: the log goes to the journal, i.e. to disk (privacy promise: nothing on disk).
        _LOGGER.info("%s: %s (%s, %.0f ms after end of speech)", sat.id,
                     "<asked>" if question else "<rejected>" if transcript.rejected
                     else f"<{len(transcript.text.split())} words>",
                     intent.name if intent else "no intent", latency)

    def _publish(self, sat: Satellite, session: Session, transcript: Transcript, intent: IntentResult | None,
                 wire_timings: JsonObject, latency: float, private: bool, hermes_too: bool = True) -> None:
        """`transcript` and `intent` (and their Hermes copies unless `hermes_too` is False)."""
        text = "" if transcript.rejected else transcript.text
        self.outbox.send(self.topics.satellite(sat.id, "transcript"), TranscriptMessage(
            session_id=session.id, satellite=sat.id, text=text, rejected=transcript.rejected,
            confidence=transcript.confidence, audio_seconds=session.audio_bytes / 32000, latency_ms=latency,
            engine=transcript.engine, locality=str(transcript.locality), private=private,
            timings=wire_timings, cpu_seconds=transcript.cpu_seconds))
        if sat.protocol is Protocol.HERMES and not private and hermes_too:
            self.hermes.transcript(sat, session, transcript)
        self.outbox.send(self.topics.satellite(sat.id, "intent"), IntentMessage(
            session_id=session.id, satellite=sat.id, text=text,
            intent=dict(intent.to_json()) if intent is not None else None,
            confidence=transcript.confidence, rejected=transcript.rejected, private=private,
            timings=wire_timings))
        if sat.protocol is Protocol.HERMES and not private and not transcript.rejected:
            self.hermes.intent(sat.id, session.id, session.id, transcript.text, intent)

    def publish_choice(self, sat: Satellite, question: Question, choice: Choice) -> None:
        """A question answered yes: the meaning chosen, published as heard, for Home Assistant
        (and Hermes skills) to act on; under the question's session id, with the command sentence
        of the choice as its text."""
        heard = dataclasses.replace(question.transcript, text=choice.text, rejected=False, intent=choice.intent)
        assert question.session is not None  # only the bridge's own questions have choices to act on
        self._publish(sat, question.session, heard, choice.intent, dict(question.timings), 0.0, question.private)

    # -- the mute race -----------------------------------------------------------------------------

    def _withheld_for_mute(self, sat: Satellite, session: Session, transcript: Transcript,
                           intent_used: bool) -> bool:
        """Nothing heard before a confirmed mute is delivered after it: a result whose decoding
        (or intent matching) outlived the mute's confirmation is dropped here, at publish time.

        A mute is put in force in memory before `policy/result` confirms it, and everything from
        here to the last publish of :meth:`deliver` runs without yielding to the event loop, so
        either the whole result is queued before the confirmation or none of it is. The session
        ends with a fatal `muted` error (no text, no intent), and the decoding is still audited."""
        if not self._is_muted(sat.id):
            return False
        self.withheld_muted += 1
        self._audit(sat, session, transcript, intent_used=intent_used)
        self.reporter.session_failed(sat, session.id, "muted",
                                     "microphone muted before the result was delivered; it was discarded")
        _LOGGER.info("%s: a result finished after the microphone was muted; discarded", sat.id)
        return True

    def withdraw_forwarded(self, sat: Satellite) -> None:
        """A mute after a forwarded command's audio went to Home Assistant, whose pipeline may
        still be running it: a fatal `muted` error for that session (sent before the mute is
        confirmed) tells Home Assistant to abandon the run."""
        forwarded = self._forwarded.pop(sat.id, None)
        if forwarded is not None and time.monotonic() - forwarded[1] <= FORWARDED_RUN_SECONDS:
            self.reporter.session_failed(sat, forwarded[0], "muted",
                                         "microphone muted; the command forwarded to Home Assistant is withdrawn")

    async def _intent(self, sat: Satellite, session: Session,
                      transcript: Transcript) -> tuple[IntentResult | None, bool, float, float]:
        """(intent, recognized, ms waited for it after the transcript, ms it took).

        The local engine answers with the intent in the same worker round trip as the text, so
        nothing is waited for; other engines' text is matched on a worker afterwards."""
        if transcript.rejected or not transcript.text:
            return None, False, 0.0, 0.0
        if transcript.intent_checked:
            return transcript.intent, True, 0.0, transcript.intent_cpu_seconds * 1000
        started = time.monotonic()
        try:
            intent, _cpu = await self.pool.recognize_intent(transcript.text, sat.area)
        except EngineError as err:
            self.reporter.report_error(err.code, err.message, sat.id, session.id)
            waited = (time.monotonic() - started) * 1000
            return None, False, waited, waited
        waited = (time.monotonic() - started) * 1000
        return intent, True, waited, waited

    def audit_only(self, sat: Satellite, session: Session, transcript: Transcript) -> None:
        """Only the audit entry (the answer to a question, whose words nobody acts on)."""
        self._audit(sat, session, transcript)

    def _audit(self, sat: Satellite, session: Session, transcript: Transcript, intent_used: bool = False) -> None:
        engines = [*_LISTENING_ENGINES, EngineUse("stt", transcript.engine or "unknown", transcript.locality)]
        if intent_used:
            engines.append(EngineUse("intent", "hassil", Locality.IN_PROCESS))
        try:
            self.audit.record(AuditEntry(
                time=time.time(), satellite=sat.id, session_id=session_id_from(session.id) or "",
                engines=tuple(engines),
                bytes_off_process=transcript.bytes_sent,
                address_class=transcript.address_class if transcript.bytes_sent else "none",
            ))
        except ValueError as err:  # a bug: every field is checked or made a token above
            self.reporter.report_error("audit_rejected", f"audit entry rejected: {err}", sat.id, session.id)
        self.outbox.stats_dirty = True
        sat.last_result = {"session_id": session.id, "engine": transcript.engine,
                           "locality": str(transcript.locality)}
