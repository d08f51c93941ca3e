"""Asking back: "Turn on the kitchen light?" — yes acts, no (or nothing) does nothing and says so.

When the verdict (`bridge.recognition.verdict`) asks, result publishing hands the question here
instead of refusing. One question per satellite at a time:

1. **Speaking.** The question is said with the bridge's voice (`bridge.speech_out`: `play` chunks
   for Hearth satellites, `playBytes` for Hermes ones) and published on
   `<prefix>/satellite/<sat>/question`. Whatever was playing on the satellite stops first.
2. **Listening.** Only after the question has finished playing (the satellite's `played`, or
   Hermes `playFinished`, or the play's time-out) the bridge opens a session without the wake
   word: a Hearth satellite that streams per wake gets `start_streaming`, an always-streaming one
   and a Hermes site are simply listened to again (as Rhasspy's `continueSession` would, the
   hotword staying off). The answer is decoded with the tiny answer grammar
   (`bridge.recognition.yesno`) on a decoder worker of its own, started with the first question.
3. **The answer.** Yes (or the choice named) publishes the chosen meaning as heard and acted on
   (`transcript` and `intent`, Hermes `intentParsed` and `intent/<name>`); no, cancel, an answer
   that is not clear, silence and the time-out (`timeout`, 5 s of listening by default) do nothing
   and say so ("OK, never mind"). Every outcome is published on `<prefix>/satellite/<sat>/answer`.

A wake word (barge-in), a `stop`, or a mute during the question ends it at once and silently: a
barge-in's command is heard as usual, and after a mute nothing is heard. The question never keeps
a satellite in a session: listening ends with the answer, the endpointer's no-speech time-out or
the question's time-out, whichever is first. Nothing here writes words to disk: the log says how
a question ended, never what was asked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..engines import EngineError, IntentResult, SttStream, TextToSpeech, Transcript
from ..protocol import hermes
from ..protocol.hearth import ProtocolError
from ..recognition.verdict import Outcome, Verdict
from ..recognition.vocabulary import Vocabulary
from ..recognition.yesno import Answer, answer_grammar, answer_vocabulary, meaning
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, Session, SessionSource
from ..stt.local import PocketsphinxStream
from ..stt.pool import DecoderPool
from ..tasks import spawn
from .outbox import Outbox
from .questions import command_text, entity_area, entity_ids, question_text, which_text

_LOGGER = logging.getLogger("bridge")

QUESTION_TIMEOUT = 5.0
"""Seconds a question listens for its answer before it gives up (and says so)."""
NEVER_MIND = "OK, never mind."
ANSWER_MIN_SPEECH = 0.1
"""Seconds of speech energy that start an answer (espeak-ng's "no" has 0.4 s)."""
#: How a question ended, as published in `answer` and counted in the bridge's stats.
OUTCOMES = ("yes", "no", "cancel", "unclear", "silence", "timeout", "interrupted", "muted", "failed")


@dataclass(frozen=True)
class Choice:
    """One meaning offered: the intent to act on and the sentence Home Assistant acts on."""

    intent: IntentResult
    text: str


@dataclass
class Question:
    """One question on one satellite, from its asking to its answer."""

    sat_id: str
    session: Session | None
    """The session of the utterance asked about (the answer's results carry its id); None for a
    question Home Assistant asked (`ask`), which it answers itself."""
    kind: str
    reason: str
    choices: tuple[Choice, ...]
    text: str
    transcript: Transcript
    private: bool
    timings: dict[str, object] = field(default_factory=dict)  #: the utterance's, as published
    request_id: str | None = None  #: a question Home Assistant asked: its request id
    count: int = 0  #: how many choices a question Home Assistant asked offers (else: `choices`)
    answer_session: str = field(default_factory=lambda: uuid.uuid4().hex)
    stage: str = "speaking"  # speaking -> listening -> done
    heard: bool = False  # the answer session delivered a result
    transcribing: bool = False  # the answer was heard to its end and is being decoded


class DialogueHost(Protocol):
    """What the dialogue needs from the bridge."""

    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    @property
    def outbox(self) -> Outbox: ...
    def is_muted(self, sat_id: str) -> bool: ...
    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None: ...
    def publish_transcripts(self) -> bool: ...


class Speaker(Protocol):
    """Speech out, as far as questions use it."""

    @property
    def tts(self) -> TextToSpeech | None: ...

    async def speak(self, sat_id: str, text: str, session_id: str | None = None, listen_after: bool = False,
                    request_id: object = None) -> bool: ...
    def stop_playback(self, sat_id: str) -> None: ...


def narrow_to_area(intent: IntentResult, area: str | None, vocab: Vocabulary | None) -> IntentResult:
    """A name that fits several entities, said on a satellite standing in an area where some of
    them are: only those count (as Home Assistant prefers the satellite's area)."""
    ids = entity_ids(intent.to_json())
    if len(ids) < 2 or area is None or vocab is None:
        return intent
    areas = {e.id: e.area for e in vocab.entities}
    here = tuple(e for e in ids if areas.get(e) == area)
    if not here or len(here) == len(ids):
        return intent
    slots = tuple(s if s.name != "name" else type(s)(s.name, s.value, s.text, here) for s in intent.slots)
    return IntentResult(intent.name, intent.confidence, intent.sensitive, intent.broad, slots, intent.unsure)


class Dialogue:
    """Every satellite's question, the answer decoder, and the counts."""

    def __init__(self, host: DialogueHost, speaker: Speaker, vocabulary: Callable[[], Vocabulary | None],
                 timeout: float = QUESTION_TIMEOUT) -> None:
        self.host = host
        self.speaker = speaker
        self.vocabulary = vocabulary
        self.timeout = timeout
        self.questions: dict[str, Question] = {}
        self.counts: dict[str, int] = {"asked": 0, "answered": 0, **{o: 0 for o in OUTCOMES}}
        #: acts on a choice: publishes it as heard (set by the bridge: result publishing)
        self.act: Callable[[Satellite, Question, Choice], None] = lambda _sat, _q, _c: None
        self._answers: OrderedDict[str, None] = OrderedDict()  #: recent answer session ids
        self._pool: DecoderPool | None = None
        self._pool_ready: asyncio.Task[DecoderPool] | None = None

    # -- asking -----------------------------------------------------------------------------------

    def consider(self, sat: Satellite, verdict: Verdict, transcript: Transcript, session: Session,
                 private: bool, confirm: str) -> tuple[Outcome, Question | None]:
        """What becomes of a verdict on this satellite, given its `confirm` setting: act, ask (with
        the question to ask) or refuse. `sensitive` asks only what is asked whatever the confidence
        (``confirm`` questions); `never` asks nothing: those are acted on (heard clearly), the rest
        refused. A question that cannot be asked (:meth:`plan`) is a refusal."""
        if verdict.outcome is not Outcome.ASK:
            return verdict.outcome, None
        if confirm == "never" or (confirm == "sensitive" and verdict.question != "confirm"):
            return (Outcome.ACT if verdict.question == "confirm" and confirm == "never" else Outcome.REFUSE), None
        question = self.plan(sat, verdict, transcript, session, private)
        return (Outcome.ASK, question) if question is not None else (Outcome.REFUSE, None)

    def plan(self, sat: Satellite, verdict: Verdict, transcript: Transcript, session: Session,
             private: bool) -> Question | None:
        """The question to ask about `verdict`, or None when none can be asked (no voice, a muted
        or busy satellite, meanings that cannot be said): the caller refuses instead."""
        if self.speaker.tts is None or self.host.is_muted(sat.id) or sat.id in self.questions:
            return None
        vocab = self.vocabulary()
        choices: list[Choice] = []
        for raw in verdict.choices[:3]:
            try:
                intent = IntentResult.from_json(raw)
            except ValueError:
                continue
            if verdict.question == "which":
                text = command_text(intent.to_json(), vocab, with_area=True)
            else:
                text = command_text(intent.to_json(), vocab)
                if text is None and not choices:
                    text = transcript.text  # the hearing itself, said back as it was heard
            if text is not None and all(c.text != text for c in choices):
                choices.append(Choice(intent, text))
        if not choices or (verdict.question == "which" and len(choices) < 2):
            return None
        if verdict.question == "which":
            first = choices[0].intent.to_json()
            slots = first.get("slots")
            bare = {**first, "slots": {k: v for k, v in slots.items() if k not in ("area", "floor")}} \
                if isinstance(slots, Mapping) else first
            areas = [entity_area(vocab, entity_ids(c.intent.to_json())[0]) or "" for c in choices]
            if not all(areas) or len(set(areas)) < len(areas):
                return None  # they cannot be told apart by their areas
            text = which_text(command_text(bare, vocab) or transcript.text, areas)
        else:
            text = question_text([c.text for c in choices])
        return Question(sat.id, session, verdict.question or "did_you_mean", verdict.reason, tuple(choices),
                        text, transcript, private)

    def ask_for(self, sat: Satellite, data: Mapping[str, object]) -> None:
        """`<prefix>/satellite/<sat>/ask` from Home Assistant: says its question, hears the answer
        and publishes it (with the `request_id`); acts on nothing (Home Assistant does)."""
        request_id, text, count = data.get("request_id"), data.get("text"), data.get("choices", 1)
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
            raise ProtocolError("bad_question", "ask: request_id must be a string of 1-64 characters")
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= 300:
            raise ProtocolError("bad_question", "ask: text must be a question of 1-300 characters")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 3:
            raise ProtocolError("bad_question", "ask: choices must be 1, 2 or 3")
        private = not self.host.publish_transcripts()
        question = Question(sat.id, None, "confirm" if count == 1 else "did_you_mean", "asked", (), text.strip(),
                            Transcript(text="", confidence=0.0), private, request_id=request_id, count=count)
        if self.speaker.tts is None or self.host.is_muted(sat.id) or sat.id in self.questions \
                or sat.session is not None:
            self.counts["asked"] += 1
            self.questions[sat.id] = question
            self.end(sat, question, "failed")
            return
        self.ask(sat, question)

    def ask(self, sat: Satellite, question: Question) -> None:
        """Says the question and listens for its answer (in the background)."""
        self.questions[sat.id] = question
        self.counts["asked"] += 1
        self.host.outbox.stats_dirty = True
        payload: dict[str, object] = {
            "session_id": question.session.id if question.session else None, "satellite": sat.id,
            "kind": question.kind, "reason": question.reason, "choices": question.count or len(question.choices),
            "intents": [c.intent.name for c in question.choices],
            "entity_ids": sorted({e for c in question.choices for e in entity_ids(c.intent.to_json())}),
            "timeout": self.timeout, "private": question.private}
        if not question.private:
            payload["text"] = question.text
        if question.request_id is not None:
            payload["request_id"] = question.request_id
        self.host.outbox.send(self.host.outbox.topics.satellite(sat.id, "question"), payload)
        failed = self._pool_ready is not None and self._pool_ready.done() and (
            self._pool_ready.cancelled() or self._pool_ready.exception() is not None)
        if self._pool_ready is None or failed:  # started with the first question (again if it failed)
            self._pool_ready = asyncio.create_task(self._start_pool(), name="answer-decoder")
        spawn(self._run(sat, question), name="question", report=self.host.report_error)

    async def _start_pool(self) -> DecoderPool:
        pool = DecoderPool(1)
        self._pool = pool
        await pool.start(answer_vocabulary(), answer_grammar())
        return pool

    async def _run(self, sat: Satellite, question: Question) -> None:
        if sat.protocol is SatelliteProtocol.HERMES:  # the hotword stays off until the answer
            self.host.outbox.send(hermes.TOGGLE_OFF, hermes.Toggle(sat.id, "dialogueSession"))
        self.speaker.stop_playback(sat.id)
        spoken = await self.speaker.speak(sat.id, question.text,
                                          session_id=question.session.id if question.session else None)
        if self.questions.get(sat.id) is not question:
            return  # interrupted while it was said (barge-in, stop, mute): already ended
        if self.host.is_muted(sat.id):
            self.end(sat, question, "muted")
            return
        if not spoken:
            self.end(sat, question, "failed")
            return
        question.stage = "listening"
        self._answers[question.answer_session] = None
        while len(self._answers) > 64:
            self._answers.popitem(last=False)
        # A one-word answer is short: the VAD, which lags the speech by ~0.3 s (and says nothing
        # in its first ~0.8 s), agrees with the energy for less than 150 ms of "yes" or "no", so an
        # answer starts and ends on its energy alone (vad_threshold -1: the VAD never vetoes; a
        # noise heard as speech is refused by the answer grammar's garbage loop, like a remark).
        endpoint = dataclasses.replace(sat.settings.endpoint, min_speech=ANSWER_MIN_SPEECH, vad_threshold=-1.0,
                                       no_speech_timeout=min(sat.settings.endpoint.no_speech_timeout, self.timeout))
        if not sat.request_session(SessionSource.COMMAND, session_id=question.answer_session, endpoint=endpoint):
            self.end(sat, question, "failed")  # something else opened a session meanwhile
            return
        await asyncio.sleep(self.timeout)
        # An answer begun in time is heard to its end (the endpointer bounds it: its silence tail,
        # its maximum length) and decoded (the recognizer's own time-out bounds that).
        while self.questions.get(sat.id) is question and not question.heard and (
                question.transcribing or (sat.session is not None and sat.session.id == question.answer_session
                                          and sat.session.endpointer.in_speech)):
            await asyncio.sleep(0.1)
        if self.questions.get(sat.id) is question and not question.heard:
            if sat.session is not None and sat.session.id == question.answer_session:
                await sat.abort("question_timeout", f"no answer within {self.timeout:g} s")
            self.end(sat, question, "timeout")

    # -- the answer session -----------------------------------------------------------------------

    def is_answer(self, session_id: str) -> bool:
        """Whether a session is (or was) a question's answer: never a command, even late."""
        return session_id in self._answers

    def listening_ended(self, sat: Satellite, session: Session) -> None:
        if (question := self._listening(sat.id, session.id)) is not None:
            question.transcribing = True

    def _listening(self, sat_id: str, session_id: str) -> Question | None:
        question = self.questions.get(sat_id)
        if question is None or question.stage != "listening" or question.answer_session != session_id:
            return None
        return question

    async def open_stream(self, sat: Satellite, session_id: str) -> SttStream | None:
        """The answer decoder's stream when `session_id` is a question's answer (even one that
        has just ended: a session opened for an answer never hears a command); else None."""
        if session_id not in self._answers or self._pool_ready is None:
            return None
        try:
            pool = await self._pool_ready
        except Exception as err:  # noqa: BLE001 - no answer decoder: the question fails
            raise EngineError("stt_failed", f"the answer decoder did not start: {err}") from err
        return PocketsphinxStream(pool, f"{session_id}#answer")

    def deliver(self, sat: Satellite, session: Session, transcript: Transcript) -> bool:
        """The answer heard (True), or not an answer session (False: the caller publishes it).
        An answer that comes after its question ended is dropped (True)."""
        question = self._listening(sat.id, session.id)
        if question is None:
            return session.id in self._answers
        question.heard = True
        count = question.count or len(question.choices)
        understood = None if transcript.rejected else meaning(transcript.text, count)
        if understood is None:
            self.end(sat, question, "unclear")
        elif understood.answer in (Answer.YES, Answer.CHOICE):
            index = understood.index or 0
            self.end(sat, question, "yes", question.choices[index] if question.choices else None, index)
        else:
            self.end(sat, question, str(understood.answer))
        return True

    def session_failed(self, sat: Satellite, session_id: str | None, code: str) -> None:
        """The answer session ended without a result: silence, a mute, a stop, a vanished satellite."""
        question = self._listening(sat.id, session_id or "")
        if question is None or question.heard:
            return
        outcome = {"no_speech": "silence", "muted": "muted", "question_timeout": "timeout",
                   "stopped": "interrupted"}.get(code, "failed")
        self.end(sat, question, outcome)

    def interrupt(self, sat_id: str, session_id: str | None = None, outcome: str = "interrupted") -> None:
        """A wake (barge-in), a stop or a mute: the question ends silently. A wake that opened the
        question's own answer session is none."""
        question = self.questions.get(sat_id)
        if question is None or (session_id is not None and session_id == question.answer_session):
            return
        sat = self.host.satellites.get(sat_id)
        if sat is not None:
            self.end(sat, question, outcome)

    # -- the end ----------------------------------------------------------------------------------

    def end(self, sat: Satellite, question: Question, outcome: str, choice: Choice | None = None,
            index: int | None = None) -> None:
        if self.questions.get(sat.id) is not question:
            return
        del self.questions[sat.id]
        listened, question.stage = question.stage == "listening", "done"
        self.counts[outcome] += 1
        if outcome in ("yes", "no", "cancel"):
            self.counts["answered"] += 1
        self.host.outbox.stats_dirty = True
        answer: dict[str, object] = {
            "session_id": question.session.id if question.session else None, "satellite": sat.id,
            "outcome": outcome, "acted": choice is not None, "choice": index,
            "intent": choice.intent.name if choice else None}
        if question.request_id is not None:
            answer["request_id"] = question.request_id
        self.host.outbox.send(self.host.outbox.topics.satellite(sat.id, "answer"), answer)
        _LOGGER.info("%s: question (%s, %s) ended: %s", sat.id, question.kind, question.reason, outcome)
        if choice is not None:
            self.act(sat, question, choice)
        elif outcome in ("no", "cancel", "unclear", "silence", "timeout") or (
                outcome == "failed" and question.request_id is None):
            if not self.host.is_muted(sat.id):
                spawn(self.speaker.speak(sat.id, NEVER_MIND,
                                         session_id=question.session.id if question.session else None),
                      name="never-mind", report=self.host.report_error)
        if sat.protocol is SatelliteProtocol.HERMES and not listened and outcome != "muted" and sat.session is None:
            # no answer session ended (which turns the hotword on again), nor a barge-in's is open
            self.host.outbox.send(hermes.TOGGLE_ON, hermes.Toggle(sat.id, "dialogueSession"))

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    async def close(self) -> None:
        if self._pool_ready is not None:
            self._pool_ready.cancel()
            await asyncio.gather(self._pool_ready, return_exceptions=True)
        if self._pool is not None:
            await self._pool.stop()
